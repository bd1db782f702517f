"""LatentEditor, the linear InterFaceGAN baseline and the editing evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from faceedit.editing.directions import LinearDirections, fit_directions
from faceedit.editing.latent import LatentEditor
from faceedit.errors import FaceeditError
from faceedit.eval.latent import default_strengths, evaluate_editing, write_results
from faceedit.nets.latent import (
    LatentClassifier,
    LatentClassifierConfig,
    LatentTransformer,
    LatentTransformerConfig,
)

L, C = 6, 8


def _transformer(name: str) -> LatentTransformer:
    t = LatentTransformer(LatentTransformerConfig(num_ws=L, w_dim=C, attr_name=name))
    with torch.no_grad():
        for p in t.parameters():
            p.normal_()
    return t.eval()


class StandInGenerator(nn.Module):
    """The StyleGAN2 interface the editor uses: num_ws, w_dim, synthesis(ws) -> img."""

    num_ws, w_dim, img_resolution = L, C, 8

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(L * C, 3 * 8 * 8)

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return torch.tanh(self.proj(ws.flatten(1))).view(-1, 3, 8, 8)


def _generator() -> nn.Module:
    try:
        from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator
    except ImportError:  # the real generator is optional for these tests
        return StandInGenerator()
    # img_resolution 8 gives 2 * 3 - 2 = 4 rows; use 16 px -> 6 rows = L
    config = StyleGAN2Config(
        img_resolution=16, z_dim=C, w_dim=C, mapping_layers=2, channel_base=128, channel_max=16
    )
    return StyleGAN2Generator(config).eval()


def test_edits_apply_in_sequence_and_rows_are_restored() -> None:
    a, b = _transformer("A"), _transformer("B")
    ws = torch.randn(3, L, C)
    editor = LatentEditor({"A": a, "B": b}, layers=(0, 4))
    out = editor.edit_latents(ws, {"A": 0.5, "B": -2.0})
    full = b(a(ws, 0.5), -2.0)
    torch.testing.assert_close(out[:, :4], full[:, :4])
    assert torch.equal(out[:, 4:], ws[:, 4:])
    reverse = LatentEditor({"A": a, "B": b}, layers=(0, 4)).edit_latents(ws, {"B": -2.0, "A": 0.5})
    assert not torch.allclose(reverse, out)  # order matters: they apply in sequence
    every_row = LatentEditor({"A": a}, layers=None).edit_latents(ws, {"A": 3.0})
    torch.testing.assert_close(every_row, a(ws, 3.0))  # strengths beyond [-1, 1]
    per_code = editor.edit_latents(ws, {"A": torch.tensor([0.0, 1.0, 2.0])})
    assert torch.equal(per_code[0], ws[0])


def test_default_range_is_rows_0_to_10_and_w_codes_broadcast() -> None:
    t = LatentTransformer(LatentTransformerConfig(num_ws=18, w_dim=4))
    editor = LatentEditor({"X": t})
    assert editor.layers == (0, 11)
    w = torch.randn(2, 4)
    out = editor.edit_latents(w, {"X": 1.0})
    assert out.shape == (2, 18, 4)
    assert torch.equal(out[:, 11:], w[:, None].expand(2, 7, 4))


def test_editor_errors() -> None:
    editor = LatentEditor({"A": _transformer("A")})
    with pytest.raises(FaceeditError, match="no transformer for attribute 'Z'"):
        editor.edit_latents(torch.randn(1, L, C), {"Z": 1.0})
    with pytest.raises(FaceeditError, match=r"expected ws \[N, 6, 8\]"):
        editor.edit_latents(torch.randn(1, 5, C), {"A": 1.0})
    with pytest.raises(FaceeditError, match="needs a generator"):
        editor.render(torch.randn(1, L, C))
    with pytest.raises(FaceeditError, match="needs an inverter"):
        editor.edit(torch.randn(1, 3, 8, 8), {"A": 1.0})


def test_render_edit_and_strip_with_a_generator() -> None:
    G = _generator()
    a = _transformer("A")
    clf = LatentClassifier(
        LatentClassifierConfig(num_ws=L, w_dim=C, hidden=(8,), n_attrs=2, attr_names=("A", "B"))
    )
    editor = LatentEditor(
        {"A": a}, generator=G, classifier=clf, inverter=lambda img: torch.zeros(len(img), L, C)
    )
    ws = torch.randn(2, L, C)
    res = editor.edit(ws, {"A": 1.0})
    torch.testing.assert_close(
        res.image, G.synthesis(res.edited_ws, noise_mode="const").clamp(-1, 1)
    )
    assert set(res.scores) == {"A", "B"} and res.scores["A"].shape == (2,)
    from_image = editor.edit(torch.zeros(1, 3, 8, 8), {"A": 0.0})
    assert torch.equal(from_image.edited_ws, torch.zeros(1, L, C))
    strip = editor.strip(ws, {"A": 1.0}, [-1.0, 0.0, 1.0])
    assert strip.shape[:3] == (2, 3, 3)
    torch.testing.assert_close(strip[:, 1], G.synthesis(ws, noise_mode="const").clamp(-1, 1))
    assert not torch.allclose(strip[:, 0], strip[:, 2])


def _linear_data(n: int = 600, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randn(n, L, C, generator=g)
    normals = torch.randn(3, L * C, generator=g)
    labels = (codes.flatten(1) @ normals.T > 0).float()
    return codes, labels, normals


def test_fitted_directions_find_the_hyperplanes_and_orthogonalise() -> None:
    codes, labels, normals = _linear_data()
    dirs = fit_directions(codes, labels, ("a", "b", "c"), [0, 1], orthogonal_to=[2])
    assert dirs.directions.shape == (2, L, C)
    flat = dirs.directions.flatten(1)
    torch.testing.assert_close(flat.norm(dim=1), torch.ones(2))
    free = fit_directions(codes, labels, ("a", "b", "c"), [0])
    cos = torch.nn.functional.cosine_similarity(free.directions.flatten(1)[0], normals[0], dim=0)
    assert cos > 0.8, cos
    n2 = torch.nn.functional.normalize(
        fit_directions(codes, labels, ("a", "b", "c"), [2]).directions.flatten(1)[0], dim=0
    )
    assert flat @ n2 == pytest.approx(torch.zeros(2), abs=1e-4)  # conditioned on c
    moved = dirs.edit_latents(codes, {"a": 3.0})
    assert ((moved.flatten(1) @ normals[0]) > 0).float().mean() > 0.9  # pushed to the positive side


def test_directions_save_load(tmp_path) -> None:
    codes, labels, _ = _linear_data(200)
    dirs = fit_directions(codes, labels, ("a", "b", "c"), [1], max_iter=10)
    dirs.save(tmp_path / "d.npz")
    back = LinearDirections.load(tmp_path / "d.npz")
    assert back.attr_names == ("b",) and torch.equal(back.directions, dirs.directions)
    with pytest.raises(FaceeditError, match="not a directions file"):
        LinearDirections.load(tmp_path / "missing.npz")


def test_evaluation_measures_change_preservation_and_distance(tmp_path) -> None:
    codes, labels, normals = _linear_data(300)
    # an exact classifier: relu(x) - relu(-x) = x, so its logits are the true linear scores
    d = L * C
    clf = LatentClassifier(
        LatentClassifierConfig(num_ws=L, w_dim=C, hidden=(2 * d,), n_attrs=3, activation="relu")
    )
    with torch.no_grad():
        clf.fcs[0].weight.copy_(torch.cat([torch.eye(d), -torch.eye(d)]))
        clf.fcs[0].bias.zero_()
        clf.fcs[1].weight.copy_(torch.cat([normals, -normals], dim=1))
        clf.fcs[1].bias.zero_()
    torch.testing.assert_close(clf(codes), codes.flatten(1) @ normals.T, rtol=1e-4, atol=1e-4)
    unit = torch.nn.functional.normalize(normals, dim=1)

    def perfect(ws, name, alpha):  # moves along the true normal of attribute 0 far enough
        return ws + (alpha * 50).view(-1, 1, 1) * unit[0].view(L, C)

    def nothing(ws, name, alpha):
        return ws.clone()

    rows = evaluate_editing(
        codes, clf, {"perfect": perfect, "nothing": nothing}, [(0, "a")], strengths=[0.0, 1.0]
    )
    by = {(r["method"], r["strength"]): r for r in rows}
    assert by[("perfect", 0.0)]["target_change"] == 0 and by[("perfect", 0.0)]["preservation"] == 1
    assert by[("perfect", 1.0)]["target_change"] == 1.0
    assert by[("perfect", 1.0)]["latent_distance"] == pytest.approx(50.0, rel=1e-4)
    assert (
        by[("nothing", 1.0)]["target_change"] == 0 and by[("nothing", 1.0)]["latent_distance"] == 0
    )
    assert by[("perfect", 1.0)]["identity"] is None
    assert default_strengths() == pytest.approx([0.2 * i for i in range(11)])
    ident = evaluate_editing(
        codes,
        clf,
        {"nothing": nothing},
        [(0, "a")],
        [1.0],
        identity=lambda a, b: torch.ones(len(a)),
    )
    assert ident[0]["identity"] == 1.0
    paths = write_results(rows + ident, tmp_path)
    assert (
        (tmp_path / "results.csv")
        .read_text()
        .splitlines()[0]
        .startswith("method,attribute,strength")
    )
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["rows"]) == 5 and "perfect" in data["summary"]
    assert paths["png"].stat().st_size > 1000
    assert np.isfinite([r["preservation"] for r in rows]).all()


def test_identity_similarity_of_renders() -> None:
    from faceedit.eval.latent import identity_similarity

    G = StandInGenerator()

    class Embedder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def extract(self, img: torch.Tensor) -> torch.Tensor:  # preferred over forward
            self.calls += 1
            return img.mean(dim=(2, 3)) + img[:, :, 0, 0]

    emb = Embedder()
    identity = identity_similarity(G, emb)
    ws = torch.randn(4, L, C)
    torch.testing.assert_close(identity(ws, ws), torch.ones(4))
    other = identity(ws, ws + 3 * torch.randn(4, L, C))
    assert other.shape == (4,) and (other < 0.999).all()
    f0 = emb.extract(G.synthesis(ws))
    f1 = emb.extract(G.synthesis(ws.flip(0)))
    torch.testing.assert_close(
        identity(ws, ws.flip(0)), torch.nn.functional.cosine_similarity(f0, f1, dim=1)
    )
    assert emb.calls == 8

"""The crop-editor seam: every method in METHODS is a CropEditor with one result type,
and the consumers never ask which method they hold."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import faceedit
from faceedit.editing.base import CropEditor, CropEdits, LatentEditMethod
from faceedit.editing.methods import METHODS, build_crop_editor
from faceedit.errors import EditError
from tests.helpers.tiny_edit import attgan_model, latent_bundle

PACKAGE = Path(faceedit.__file__).parent


@pytest.fixture(scope="module")
def editors(tmp_path_factory):
    root = tmp_path_factory.mktemp("seam")
    latent, attgan = latent_bundle(root), attgan_model(root)
    return {
        "latent": build_crop_editor("latent", latent, invert="optimize", steps=2),
        "linear": build_crop_editor("linear", latent, invert="optimize", steps=2),
        "attgan": build_crop_editor("attgan", attgan),
    }


def test_every_registered_method_builds_a_crop_editor(editors):
    assert set(editors) == set(METHODS)
    for name, ed in editors.items():
        assert isinstance(ed, CropEditor) and ed.method == name


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_result_type_and_per_crop_strengths(editors, name):
    ed = editors[name]
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, ed.crop_size, ed.crop_size, 3), dtype=np.uint8)
    attr = ed.attributes[0]
    code = ed.invert(crops)
    rec = ed.reconstruct(code)
    assert rec.shape == crops.shape and rec.dtype == np.uint8
    both = ed.edit_codes(code, {attr: np.array([1.0, -1.0, 1.0])})
    assert isinstance(both, CropEdits)
    assert both.images.shape == crops.shape and both.images.dtype == np.uint8
    # a crop's result depends only on its own strength: per-crop strengths give what the
    # same crop gets with that strength for all
    up = ed.edit_codes(code, {attr: 1.0}).images
    down = ed.edit_codes(code, {attr: -1.0}).images
    np.testing.assert_array_equal(both.images[[0, 2]], up[[0, 2]])
    np.testing.assert_array_equal(both.images[1], down[1])
    assert not np.array_equal(up, down)


def test_linear_and_transformers_share_the_inversion_but_not_the_edit(editors):
    crops = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    ws = editors["latent"].invert(crops)
    assert isinstance(editors["latent"].latent_method(), LatentEditMethod)
    assert isinstance(editors["linear"].latent_method(), LatentEditMethod)
    a = editors["latent"].edit_latents(ws, {"Smiling": 1.0})
    b = editors["linear"].edit_latents(ws, {"Smiling": 1.0})
    assert a.shape == b.shape == ws.shape and not torch.allclose(a, b)
    # the linear move is strength * scale along a unit direction
    d = editors["linear"].directions
    k = d.index("Smiling")
    torch.testing.assert_close(b - ws, d.scale[k] * d.directions[k].expand_as(ws))


def test_a_bad_request_is_one_clear_error(editors):
    ed = editors["attgan"]
    with pytest.raises(EditError, match="unknown attribute 'Nope'"):
        ed.check_edits({"Nope": 1.0})
    with pytest.raises(EditError, match="strength must be a number"):
        ed.check_edits({ed.attributes[0]: float("nan")})
    with pytest.raises(EditError, match="choose from latent, linear, attgan"):
        build_crop_editor("stylegan-nada", None)


def test_a_bundle_without_directions_refuses_linear_at_load(tmp_path):
    import json

    bundle = latent_bundle(tmp_path)
    spec = json.loads((bundle / "bundle.json").read_text())
    del spec["directions"]
    (bundle / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(EditError, match="--method linear needs linear directions"):
        build_crop_editor("linear", bundle)


CONSUMERS = [
    "editing/pipeline.py",
    "editing/video.py",
    "eval/avatars.py",
    "eval/demo.py",
    "eval/avatar_sweep.py",
    "app/backend.py",
    "app/page.py",
    "app/photo.py",
    "app/studio.py",
]


@pytest.mark.parametrize("module", CONSUMERS)
def test_consumers_never_branch_on_a_method_string(module):
    """``x.method == "latent"`` (or a method name tested with ``in``) in a consumer is a
    branch the crop-editor seam exists to remove."""
    tree = ast.parse((PACKAGE / module).read_text())
    names = set(METHODS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            consts = [
                c.value
                for c in [node.left, *node.comparators]
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
            assert not names & set(consts), f"{module}:{node.lineno} compares with {consts}"


def test_a_new_latent_method_is_one_class_and_one_registry_line(editors, tmp_path, monkeypatch):
    """What a contributor writes for a new method: a LatentEditMethod and one line in
    METHODS. `faceedit edit --method` then offers it and edits a real photo with it."""
    from faceedit.cli import main
    from faceedit.data.images import read_image
    from faceedit.editing.methods import latent_editor
    from tests.helpers.tiny_edit import GRACE, latent_bundle

    class Shift:
        """Moves every code along one fixed direction per attribute."""

        attributes = ["Smiling"]

        def edit_latents(self, ws, edits):
            return ws + 3.0 * float(edits["Smiling"])

    monkeypatch.setitem(
        METHODS, "shift", lambda model, **o: latent_editor(model, **o).using(Shift(), "shift")
    )
    bundle = latent_bundle(tmp_path)
    outs = {}
    for method in ("latent", "shift"):
        outs[method] = tmp_path / f"{method}.png"
        args = ["edit", str(GRACE), "--method", method, "--attr", "Smiling=1"]
        assert main([*args, "--model", str(bundle), "--steps", "2", "-o", str(outs[method])]) == 0
    assert not np.array_equal(read_image(outs["latent"]), read_image(outs["shift"]))
    ed = build_crop_editor("shift", bundle, invert="optimize", steps=2)
    assert ed.method == "shift" and ed.attributes == ["Smiling"]

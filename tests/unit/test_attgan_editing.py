"""AttGANEditor modes, the release's conflict rules and the evaluation metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceedit.editing.attgan import (
    AVATAR_CONFLICTS,
    AttGANEditor,
    flip_targets,
    resolve_conflicts,
)
from faceedit.errors import FaceeditError
from faceedit.nets.attgan import (
    DEFAULT_ATTRS,
    AttGAN,
    AttGANConfig,
    AttGANDiscriminatorConfig,
    AttGANGeneratorConfig,
)

NAMES = list(DEFAULT_ATTRS)


def _model(style_dim: int = 0, attrs=DEFAULT_ATTRS, rules: str = "release") -> AttGAN:
    torch.manual_seed(0)
    g = AttGANGeneratorConfig(
        attrs=tuple(attrs),
        n_attrs=len(attrs),
        conflict_rules=rules,
        enc_dim=4,
        dec_dim=4,
        enc_layers=3,
        dec_layers=3,
        img_size=32,
        inject_layers=1,
        style_dim=style_dim,
    )
    d = AttGANDiscriminatorConfig(
        dim=4, n_layers=3, fc_dim=8, img_size=32, style_dim=style_dim, n_attrs=len(attrs)
    )
    return AttGAN(AttGANConfig(G=g, D=d)).eval()


def _att(names=NAMES, **on) -> torch.Tensor:
    """``[1, len(names)]`` attributes, zero except those given."""
    a = torch.zeros(1, len(names))
    for k, v in on.items():
        a[0, names.index(k)] = v
    return a


def test_conflict_rules() -> None:
    a = resolve_conflicts(_att(Bald=1, Bangs=1), "Bald", NAMES)
    assert a[0, NAMES.index("Bangs")] == 0
    a = resolve_conflicts(_att(Blond_Hair=1, Black_Hair=1, Brown_Hair=1), "Blond_Hair", NAMES)
    assert a[0, NAMES.index("Black_Hair")] == 0 and a[0, NAMES.index("Brown_Hair")] == 0
    a = resolve_conflicts(_att(Mustache=1, No_Beard=1), "Mustache", NAMES)
    assert a[0, NAMES.index("No_Beard")] == 0
    # switching an attribute off changes nothing else
    a = resolve_conflicts(_att(Bangs=1), "Bald", NAMES)
    assert a[0, NAMES.index("Bangs")] == 1
    # names the user set explicitly are kept
    a = resolve_conflicts(_att(Bald=1, Bangs=1), "Bald", NAMES, keep=["Bangs"])
    assert a[0, NAMES.index("Bangs")] == 1


AVATAR_NAMES = ["Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Wearing_Hat", "Smiling"]


def _avatar_att(**on) -> torch.Tensor:
    return _att(AVATAR_NAMES, **on)


def test_avatar_conflict_rules_follow_what_a_hat_or_a_bald_head_hides() -> None:
    n = AVATAR_NAMES
    a = resolve_conflicts(
        _avatar_att(Wearing_Hat=1, Black_Hair=1, Bald=1), "Wearing_Hat", n, rules=AVATAR_CONFLICTS
    )
    assert a[0].tolist() == _avatar_att(Wearing_Hat=1)[0].tolist()
    a = resolve_conflicts(
        _avatar_att(Bald=1, Blond_Hair=1, Wearing_Hat=1), "Bald", n, rules=AVATAR_CONFLICTS
    )
    assert a[0].tolist() == _avatar_att(Bald=1)[0].tolist()
    a = resolve_conflicts(
        _avatar_att(Brown_Hair=1, Black_Hair=1, Wearing_Hat=1, Bald=1),
        "Brown_Hair",
        n,
        rules=AVATAR_CONFLICTS,
    )
    # a balding top still shows hair, so Bald may stay with a colour
    assert a[0].tolist() == _avatar_att(Brown_Hair=1, Bald=1)[0].tolist()
    # the release's rules leave the hair colour under a hat alone
    a = resolve_conflicts(_avatar_att(Wearing_Hat=1, Black_Hair=1), "Wearing_Hat", n)
    assert a[0, n.index("Black_Hair")] == 1


def test_the_editor_uses_the_rules_its_model_names() -> None:
    img = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    current = {**dict.fromkeys(AVATAR_NAMES, 0.0), "Black_Hair": 1.0}
    for rules, hair in (("avatars", -0.5), ("release", 0.5)):
        editor = AttGANEditor(_model(attrs=AVATAR_NAMES, rules=rules))
        res = editor.edit(img, {"Wearing_Hat": 1.0}, current=current)
        assert res.target[0, AVATAR_NAMES.index("Black_Hair")] == hair
        flips = flip_targets(_avatar_att(Black_Hair=1), AVATAR_NAMES, 0.5, 1.0, editor.rules)
        assert flips[AVATAR_NAMES.index("Wearing_Hat"), 0, 1] == hair
    with pytest.raises(FaceeditError, match="unknown conflict rules"):
        AttGANEditor(_model(attrs=AVATAR_NAMES, rules="celebA-ish"))


def test_flip_targets_use_test_int_on_the_flipped_attribute() -> None:
    a = _att(Bangs=1, Black_Hair=1, Male=1)
    t = flip_targets(a, NAMES, thres_int=0.5, test_int=1.0)
    assert t.shape == (13, 1, 13)
    i = NAMES.index("Blond_Hair")
    assert t[i, 0, i] == 1.0  # flipped on, at test_int
    assert t[i, 0, NAMES.index("Black_Hair")] == -0.5  # one hair colour
    assert t[i, 0, NAMES.index("Male")] == 0.5  # others keep their value
    j = NAMES.index("Bald")
    assert t[j, 0, NAMES.index("Bangs")] == -0.5


def test_edit_predicts_current_attributes_and_keeps_the_rest() -> None:
    model = _model()
    editor = AttGANEditor(model)
    img = np.random.default_rng(0).integers(0, 255, (40, 36, 3), dtype=np.uint8)
    res = editor.edit(img, {"Eyeglasses": 1.0, "Bald": 0.8})
    x = editor.preprocess(img)
    with torch.no_grad():
        predicted = (model.D.classify(x) > 0).float()
    assert torch.equal(res.attrs, predicted)
    t = res.target[0]
    assert t[NAMES.index("Eyeglasses")] == 1.0 and t[NAMES.index("Bald")] == pytest.approx(0.8)
    assert t[NAMES.index("Bangs")] == -0.5  # conflicts with Bald switched on
    assert res.image.shape == (1, 32, 32, 3) and res.image.dtype == np.uint8
    assert set(res.scores) == set(NAMES)
    # the fast and the plain path agree on the image
    plain = AttGANEditor(model, fast=False).edit(img, {"Eyeglasses": 1.0, "Bald": 0.8})
    assert np.abs(plain.image.astype(int) - res.image.astype(int)).max() <= 1


def test_slide_and_flip_all_shapes_and_monotone_input() -> None:
    editor = AttGANEditor(_model())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    outs, values = editor.slide(x, "Young", -1, 1, 5, current=torch.zeros(1, 13))
    assert outs.shape == (5, 2, 3, 32, 32) and values[0] == -1 and values[-1] == 1
    assert not torch.allclose(outs[0], outs[-1])
    img, recon, flips = editor.flip_all(x, current=torch.ones(2, 13))
    assert flips.shape == (13, 2, 3, 32, 32) and recon.shape == img.shape
    grid = editor.flip_grid(x, current=torch.ones(2, 13))
    assert grid.ndim == 3 and grid.shape[1] > 15 * 32


def test_editor_errors() -> None:
    editor = AttGANEditor(_model().G)  # no discriminator
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(FaceeditError, match="no discriminator"):
        editor.edit(x, {"Eyeglasses": 1})
    with pytest.raises(FaceeditError, match="Smiling"):
        editor.edit(x, {"Smiling": 1}, current=torch.zeros(1, 13))
    with pytest.raises(FaceeditError, match="style_dim"):
        from faceedit.editing.attgan_style import style_grid

        style_grid(editor, x, "Eyeglasses", current=torch.zeros(1, 13))


def test_style_grid_varies_with_the_controllers() -> None:
    from faceedit.editing.attgan_style import style_grid, style_values

    editor = AttGANEditor(_model(style_dim=2))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    grid = style_grid(editor, x, "Eyeglasses", n_styles=3, current=torch.zeros(1, 13))
    assert grid.shape[1] > 4 * 32
    v = style_values(2, 3)
    assert v.shape == (3, 2) and v.abs().max() <= 1


def test_psnr_ssim_known_values() -> None:
    from faceedit.eval.metrics import psnr, ssim

    a = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(a, a, data_range=1.0), torch.ones(2), atol=1e-5)
    b = (a + 0.1).clamp(0, 1)
    mse = ((a - b) ** 2).flatten(1).mean(1)
    assert torch.allclose(psnr(a, b, data_range=1.0), 10 * torch.log10(1 / mse))
    noisy = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    assert (ssim(a, noisy, data_range=1.0) < ssim(a, b, data_range=1.0)).all()


def test_psnr_uint8_per_image_and_capped() -> None:
    from faceedit.eval.metrics import psnr_uint8

    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[1] = 1  # off by one everywhere: MSE 1
    assert psnr_uint8(a, b).tolist() == pytest.approx([100.0, 20 * np.log10(255.0)])
    assert float(psnr_uint8(a[1], b[1])) == pytest.approx(20 * np.log10(255.0))

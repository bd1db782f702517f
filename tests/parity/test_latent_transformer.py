"""Parity with the ``latent_transformer`` fixture (InterDigital ``LCNet`` + ``F_mapping``)."""

from __future__ import annotations

import torch

from faceedit.nets.base import load_state_dict_checked
from faceedit.nets.latent import (
    LatentClassifier,
    LatentTransformer,
    LatentTransformerBank,
    classifier_preset,
    get_coeff,
)
from tests.parity.fixtures import load_fixture


def _models():
    fx = load_fixture("latent_transformer")
    state = fx.weights()
    fmaps = fx.spec["config"]["Latent_Classifier"]["fmaps"]
    clf = LatentClassifier(classifier_preset("released", hidden=tuple(fmaps[1:-1])))
    tnet = LatentTransformer()
    for prefix, model in (("Latent_Classifier.", clf), ("T_net.", tnet)):
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        load_state_dict_checked(model, sub, source=prefix)
    return fx, clf.eval(), tnet.eval()


@torch.no_grad()
def test_classifier_and_transformer_cases() -> None:
    fx, clf, tnet = _models()
    w0, alpha = fx.io["input.w0"], fx.io["input.alpha"]
    n = w0.shape[0]
    fx.assert_close("classifier", clf(w0.view(n, -1)), "output.classifier.logits")
    fx.assert_close("tnet", tnet(w0.view(n, -1), alpha).view(n, 18, 512), "output.tnet.w1")
    # the 3-D entry point gives the same result as the flattened one
    fx.assert_close("tnet3d", tnet(w0, alpha), "output.tnet.w1")
    # the batched bank used by training computes the same edit
    bank = LatentTransformerBank.from_transformers([tnet, tnet])
    out = bank(w0, torch.stack([alpha, alpha]))
    fx.assert_close("bank0", out[0], "output.tnet.w1")
    fx.assert_close("bank1", out[1], "output.tnet.w1")


@torch.no_grad()
def test_trainer_path_and_test_edit() -> None:
    from faceedit.editing.latent import LatentEditor

    fx, clf, tnet = _models()
    w0, alpha = fx.io["input.w0"], fx.io["input.alpha"]
    p0 = clf(w0)
    fx.assert_close("p0", p0, "output.trainer_path.p0")
    pb0 = torch.sigmoid(p0)[:, 15]
    coeff = get_coeff(pb0)
    fx.assert_close("coeff", coeff, "output.trainer_path.coeff")
    fx.assert_close("target", (pb0 + coeff).clamp(0, 1).round(), "output.trainer_path.target")
    w1 = tnet(w0, coeff)
    fx.assert_close("w1", w1, "output.trainer_path.w1")
    fx.assert_close("p1", clf(w1), "output.trainer_path.p1")

    # the editor's per-sample path with the original's row range (0-10 edited)
    editor = LatentEditor({"Eyeglasses": tnet})
    w_edit = torch.cat(
        [editor.edit_latents(w0[i : i + 1], {"Eyeglasses": float(a)}) for i, a in enumerate(alpha)]
    )
    fx.assert_close("test_edit", w_edit, "output.test_edit.w_edit")


def test_full_size_keys_match_released_files() -> None:
    fx, _, _ = _models()
    rows = fx.full_keys()
    full = {
        "Latent_Classifier.": LatentClassifier(classifier_preset("released")),
        "T_net.": LatentTransformer(),
    }
    for prefix, model in full.items():
        expected = {k[len(prefix) :]: s for k, s, _ in rows if k.startswith(prefix)}
        mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert mine == expected, prefix


@torch.no_grad()
def test_released_file_layout_loads_through_faceedit_load(tmp_path) -> None:
    """The fixture's weights saved as the released bare state dicts load via faceedit.load."""
    import faceedit

    fx = load_fixture("latent_transformer")
    state = fx.weights()
    for prefix, name in (
        ("T_net.", "tnet_15.pth.tar"),
        ("Latent_Classifier.", "latent_classifier_epoch_20.pth"),
    ):
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        torch.save(sub, tmp_path / name)
    tnet = faceedit.load(tmp_path / "tnet_15.pth.tar")
    clf = faceedit.load(tmp_path / "latent_classifier_epoch_20.pth")
    assert tnet.config.attr_name == "Eyeglasses"
    w0, alpha = fx.io["input.w0"], fx.io["input.alpha"]
    fx.assert_close("classifier", clf(w0), "output.classifier.logits")
    fx.assert_close("tnet", tnet(w0, alpha), "output.tnet.w1")

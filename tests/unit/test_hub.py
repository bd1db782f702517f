"""The one resolver: paths, shipped names, downloaded names, run directories, bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import faceedit
from faceedit import hub, registry
from faceedit.errors import CheckpointError
from faceedit.hub import HubError, resolve
from tests.helpers.tiny_edit import attgan_model, latent_bundle


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return {"latent": latent_bundle(root), "attgan": attgan_model(root)}


def test_a_path_is_itself_and_a_shipped_name_is_its_directory(tiny):
    assert resolve(tiny["attgan"]) == tiny["attgan"]
    assert resolve("avatar-latent") == faceedit.shipped.SHIPPED_DIR / "avatar-latent"
    assert hub.is_bundle(resolve("avatar-latent"))


def test_a_downloaded_registry_name_is_its_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path))
    entry = registry.REGISTRY["latent-classifier"]
    with pytest.raises(HubError, match="faceedit download latent-classifier"):
        resolve("latent-classifier")
    (tmp_path / entry.filename).write_bytes(b"x")
    assert resolve("latent-classifier") == tmp_path / entry.filename
    # a release with no direct link says where to fetch it by hand
    with pytest.raises(HubError, match="by hand"):
        resolve("attgan-384-hq")


def test_the_cache_honours_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEEDIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert hub.cache_dir() == tmp_path / "faceedit"
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "own"))
    assert hub.cache_dir() == tmp_path / "own"


def test_an_unknown_name_lists_what_is_known():
    with pytest.raises(HubError) as e:
        resolve("no-such-model", "--model")
    text = str(e.value)
    assert text.startswith("--model no-such-model: not found") and "\n" not in text
    for name in ("avatar-latent", "avatar-attgan", "e4e-ffhq-encode"):
        assert name in text


def test_a_run_directory_is_its_final_model_or_its_latest_checkpoint(tmp_path, tiny):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    # what a training command writes at the top: its training config, not a model
    (run / "config.json").write_text(json.dumps({"steps": 10}))
    (run / "checkpoint.pt").write_bytes(b"x")
    assert resolve(run) == run / "checkpoint.pt"
    shutil.copytree(tiny["attgan"], run / "model")
    assert resolve(run) == run / "model"
    assert isinstance(faceedit.load(run), faceedit.AttGAN)


def test_the_catalogue_names_every_model_once():
    cat = hub.catalogue()
    assert set(faceedit.shipped.shipped_models()) <= set(cat)
    assert set(registry.REGISTRY) <= set(cat)
    assert cat["avatar-latent"].origin == "shipped" and cat["avatar-latent"].path is not None
    assert cat["e4e-ffhq-encode"].preset == "e4e-ffhq"
    from faceedit.configs import preset_names

    assert {e.preset for e in cat.values() if e.preset} <= set(preset_names())


def test_load_returns_the_pipeline_for_a_bundle_and_refuses_one_as_a_network(tiny):
    pipe = faceedit.load(tiny["latent"])
    assert isinstance(pipe, faceedit.LatentPipeline)
    assert pipe.attributes == ["Eyeglasses", "Smiling"]
    with pytest.raises(CheckpointError, match="bundle"):
        faceedit.checkpoints.load(tiny["latent"])


def test_shipped_bundle_round_trips_and_edits_identically(tmp_path):
    from faceedit.data.avatars import render_record
    from faceedit.eval.avatars import held_out_records

    pipe = faceedit.load("avatar-latent")
    assert isinstance(pipe, faceedit.LatentPipeline) and pipe.domain == "avatar"
    pipe.save_pretrained(tmp_path / "copy")
    copy = faceedit.load(tmp_path / "copy")
    spec = json.loads((tmp_path / "copy" / "bundle.json").read_text())
    assert spec["domain"] == "avatar" and spec["layers"] == "all"
    assert copy.attributes == pipe.attributes
    crops = np.stack([render_record(r, 64) for r in held_out_records(3, seed=7)])
    a, b = pipe.invert(crops), copy.invert(crops)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    for x_pipe, y_pipe in (
        (pipe, copy),
        (pipe.using(pipe.directions, "linear"), copy.using(copy.directions, "linear")),
    ):
        x = x_pipe.edit_codes(a, {"Smiling": 1.0, "Bald": -0.5})
        y = y_pipe.edit_codes(b, {"Smiling": 1.0, "Bald": -0.5})
        np.testing.assert_array_equal(x.images, y.images)
    with pytest.raises(faceedit.FaceeditError, match="exists"):
        pipe.save_pretrained(tmp_path / "copy")  # never over another bundle


def _fake_parts(cache, encoder: str) -> None:
    """The cached files of an official bundle's parts (contents never read here)."""
    cache.mkdir(exist_ok=True)
    (cache / registry.REGISTRY[encoder].filename).write_bytes(b"x")
    (cache / "latent-transformer-models" / "001").mkdir(parents=True, exist_ok=True)
    (cache / registry.REGISTRY["latent-classifier"].filename).write_bytes(b"x")


def _fake_bundle(cache, name: str) -> None:
    (cache / name).mkdir()
    (cache / name / "bundle.json").write_text('{"method": "latent"}')


def test_an_official_bundle_counts_once_assembled_with_every_part(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path))
    entry = registry.REGISTRY["lt-ffhq-e4e"]
    assert entry.kind == "bundle" and entry.domain == "ffhq"
    assert entry.part_names == ["e4e-ffhq-encode", "latent-transformer-models", "latent-classifier"]
    assert registry.REGISTRY["lt-ffhq-psp"].part_names[0] == "psp-ffhq-encode"
    assert hub.default_model() is None
    _fake_parts(tmp_path, "e4e-ffhq-encode")
    # the parts alone are not the bundle: it is assembled by faceedit download
    assert hub.catalogue()["lt-ffhq-e4e"].path is None
    with pytest.raises(HubError, match="faceedit download lt-ffhq-e4e"):
        resolve("lt-ffhq-e4e")
    _fake_bundle(tmp_path, "lt-ffhq-e4e")
    assert hub.catalogue()["lt-ffhq-e4e"].path == tmp_path / "lt-ffhq-e4e"
    assert resolve("lt-ffhq-e4e") == tmp_path / "lt-ffhq-e4e"
    # a part deleted since: the bundle no longer counts
    (tmp_path / registry.REGISTRY["latent-classifier"].filename).unlink()
    assert hub.catalogue()["lt-ffhq-e4e"].path is None and hub.default_model() is None


def test_the_default_model_prefers_e4e_then_psp(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path))
    _fake_parts(tmp_path, "psp-ffhq-encode")
    _fake_bundle(tmp_path, "lt-ffhq-psp")
    assert hub.default_model() == "lt-ffhq-psp"
    _fake_parts(tmp_path, "e4e-ffhq-encode")
    _fake_bundle(tmp_path, "lt-ffhq-e4e")
    assert hub.default_model() == "lt-ffhq-e4e"


def test_a_manual_release_names_the_from_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path))
    with pytest.raises(HubError, match="faceedit download attgan-384-hq --from FOLDER"):
        resolve("attgan-384-hq")

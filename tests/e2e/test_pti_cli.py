"""``--invert pti`` end to end with tiny random models: ``faceedit edit`` on a real photo,
``video`` on a short clip, ``invert`` (codes plus the tuned generator, which ``edit``
then renders codes with) and ``eval avatars``; bad options are one line and write
nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit.cli import main
from faceedit.data.images import read_image, tensor_to_uint8, write_image
from tests.helpers.tiny_edit import GRACE, latent_bundle, make_video

PTI = ["--invert", "pti", "--pti-steps", "3", "--steps", "2"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pti")
    latent_bundle(root)
    return root


def test_edit_with_pti_writes_the_edited_photo(root, tmp_path, capsys):
    out = tmp_path / "out.png"
    args = ["edit", str(GRACE), "--attr", "Smiling=1", "--model", str(root / "latent")]
    assert main([*args, *PTI, "--reconstruct", "-o", str(out)]) == 0
    edited, photo = read_image(out), read_image(GRACE)
    recon = read_image(tmp_path / "out_recon.png")
    assert edited.shape == photo.shape == recon.shape
    assert np.abs(edited.astype(int) - photo.astype(int)).mean() > 0.1  # the face changed
    assert not np.array_equal(edited, recon)  # an edit, not the reconstruction


def test_bad_pti_options_are_one_line_and_write_nothing(root, tmp_path, capsys):
    out = tmp_path / "out.png"
    base = ["edit", str(GRACE), "--attr", "Smiling=1", "--model", str(root / "latent")]
    cases = [
        [*base, "--pti-steps", "3"],  # without --invert pti
        [*base, "--invert", "pti", "--pti-steps", "0"],
        [*base, "--invert", "pti", "--pti-lr", "-1"],
        [*base, "--invert", "pti", "--pti-perceptual", "avatar-judge"],  # the judge
        [*base, "--invert", "pti", "--pti-perceptual", str(tmp_path / "missing")],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main([*argv, "-o", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "evaluation judge" in (main([*cases[3], "-o", str(out)]), capsys.readouterr().err)[1]
    assert not out.exists()


def test_video_with_pti(root, tmp_path, capsys):
    clip = tmp_path / "in.mp4"
    make_video(clip, n_frames=3, audio=None)
    out = tmp_path / "out.mp4"
    args = ["video", str(clip), "--attr", "Smiling=1", "--model", str(root / "latent")]
    assert main([*args, *PTI, "-q", "-o", str(out)]) == 0
    assert "3 frames" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    """A generator and a crop it drew, with a shading it does not draw."""
    from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator

    torch.manual_seed(0)
    cfg = StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, channel_base=256, channel_max=32)
    G = StyleGAN2Generator(cfg).eval()
    G.estimate_w_avg(num_samples=300)
    root = tmp_path_factory.mktemp("invert")
    G.save_pretrained(root / "tiny")
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, 32, generator=torch.Generator().manual_seed(3)))
        img = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
    shading = 0.3 * torch.linspace(-1, 1, 16).reshape(1, 1, 16, 1)
    write_image(root / "face.png", tensor_to_uint8((img + shading).clamp(-1, 1))[0])
    return root


def test_invert_pti_writes_codes_and_the_tuned_generator(face, root, tmp_path, capsys):
    from faceedit.checkpoints import load

    out = tmp_path / "codes.npy"
    args = ["invert", str(face / "face.png"), "--model", str(face / "tiny"), "--steps", "20"]
    args += ["--invert", "pti", "--pti-steps", "40", "--pti-lr", "3e-3", "-q"]
    assert main([*args, "--compare", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pivotal tuning: PSNR" in printed and str(tmp_path / "codes_generator") in printed
    assert (tmp_path / "codes_compare.png").is_file()
    ws = torch.from_numpy(np.load(out))
    tuned, original = load(tmp_path / "codes_generator"), load(face / "tiny")
    target = read_image(face / "face.png")

    def psnr(G) -> float:
        with torch.no_grad():
            img = tensor_to_uint8(G.synthesis(ws, noise_mode="const").clamp(-1, 1))[0]
        mse = ((img.astype(float) - target.astype(float)) ** 2).mean()
        return 10 * np.log10(255.0**2 / mse)

    assert psnr(tuned) > psnr(original) + 2.0  # the codes mean the image with these weights
    meta = json.loads((tmp_path / "codes_generator" / "config.json").read_text())["metadata"]
    assert meta["pti"]["steps"] == 40 and meta["pti"]["perceptual"] == "pixels"
    assert meta["lineage"][0]["role"] == "init"
    # the tuned generator renders the codes (and their edits) where a generator is wanted;
    # the bundle's transformers fit a 32 px W+, so a W+ of this generator's shape is edited
    # with transformers made for it
    from faceedit.nets.latent import LatentTransformer, LatentTransformerConfig

    t = LatentTransformer(LatentTransformerConfig(num_ws=6, w_dim=32, attr_name="Smiling"))
    t.save_pretrained(tmp_path / "tn" / "tnet_Smiling")
    strip = tmp_path / "strip.png"
    codes = ["edit", str(out), "--attr", "Smiling=1", "--transformers", str(tmp_path / "tn")]
    assert main([*codes, "--generator", str(tmp_path / "codes_generator"), "-o", str(strip)]) == 0
    assert Image.open(strip).size[0] > 0
    # the same output again: the tuned generator is not overwritten
    before = (tmp_path / "codes_generator" / "model.safetensors").read_bytes()
    assert main([*args, "-o", str(out)]) == 2
    assert "codes_generator" in capsys.readouterr().err
    assert (tmp_path / "codes_generator" / "model.safetensors").read_bytes() == before
    assert main([*args[:-1], "--optimize-noise", "-o", str(tmp_path / "n.npy")]) == 2
    # W+ codes are edited as they are: --invert pti there says where the tuned weights go
    assert main([*codes, "--invert", "pti", "-o", str(tmp_path / "s.png")]) == 2
    assert "--generator" in capsys.readouterr().err


def test_eval_avatars_with_pti_records_the_inversion(root, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "avatars", "--method", "latent", "--model", str(root / "latent"), "--n", "2"]
    assert main([*args, "--attrs", "Smiling", *PTI, "-q", "-o", str(out)]) == 0
    report = json.loads((out / "avatar_eval.json").read_text())
    assert report["inversion"]["invert"] == "pti"
    assert report["inversion"]["pti"]["steps"] == 3
    assert report["inversion"]["pti"]["perceptual"] == "pixels"
    assert main([*args, *PTI, "--strengths", "1,2", "-o", str(tmp_path / "s")]) == 2
    assert "--invert pti" in capsys.readouterr().err
    # the network the tuning learns from is in what the judge must be independent of
    tuned_by = [*PTI, "--pti-perceptual", "avatar-oracle", "--judge", "avatar-oracle"]
    assert main([*args, *tuned_by, "-o", str(tmp_path / "j")]) == 2
    assert "not independent of avatar-oracle" in capsys.readouterr().err
    assert not (tmp_path / "j").exists()

"""`faceedit invert` end to end on a tiny generator and an image it rendered."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from faceedit.cli import main
from faceedit.data.images import tensor_to_uint8, write_image
from faceedit.eval.metrics import psnr
from faceedit.losses import VGG16Features
from faceedit.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator


@pytest.fixture(scope="module")
def model_and_image(tmp_path_factory):
    torch.manual_seed(0)
    cfg = StyleGAN2Config(z_dim=32, w_dim=32, img_resolution=16, channel_base=256, channel_max=32)
    G = StyleGAN2Generator(cfg).eval()
    G.estimate_w_avg(num_samples=300)
    root = tmp_path_factory.mktemp("invert")
    G.save_pretrained(root / "tiny")
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, 32, generator=torch.Generator().manual_seed(3)))
        img = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
    rgb = tensor_to_uint8(img)[0]
    # saved at 4x the generator's size: the verb resizes it down
    big = np.asarray(Image.fromarray(rgb).resize((64, 64), Image.Resampling.NEAREST))
    write_image(root / "face.png", big)
    return G, root, img


def test_invert_writes_codes_and_comparison(model_and_image, tmp_path, capsys):
    G, root, target = model_and_image
    out, cmp_png = tmp_path / "codes.npy", tmp_path / "cmp.png"
    args = ["invert", str(root / "face.png"), "--model", str(root / "tiny"), "--steps", "60"]
    code = main([*args, "--space", "w+", "-o", str(out), "--compare", str(cmp_png)])
    assert code == 0
    ws = np.load(out)
    assert ws.shape == (1, G.num_ws, G.w_dim) and ws.dtype == np.float32
    # the saved codes reproduce the picture far better than the average face does
    with torch.no_grad():
        rec = G.synthesis(torch.from_numpy(ws), noise_mode="const")
        avg = G.synthesis(G.w_avg[None], noise_mode="const")
    target_q = torch.from_numpy(tensor_to_uint8(target)[0]).permute(2, 0, 1)[None] / 127.5 - 1
    assert float(psnr(rec.clamp(-1, 1), target_q)[0]) > float(psnr(avg, target_q)[0]) + 8
    grid = np.asarray(Image.open(cmp_png))
    assert grid.shape[1] > 2 * 128 and grid.shape[0] > 128  # two cells of at least 128 px
    stdout = capsys.readouterr().out
    assert "PSNR" in stdout and f"wrote {out}" in stdout and f"wrote {cmp_png}" in stdout
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_invert_noise_and_errors(model_and_image, tmp_path, capsys):
    G, root, _ = model_and_image
    out = tmp_path / "w.npy"
    base = ["invert", str(root / "face.png"), "--model", str(root / "tiny")]
    assert main([*base, "--steps", "3", "--space", "w", "--optimize-noise", "-o", str(out)]) == 0
    noise = np.load(tmp_path / "w_noise.npz")
    assert len(noise.files) == sum(b.num_conv for b in G.synthesis.blocks())
    ws = np.load(out)
    assert np.array_equal(ws[:, 0], ws[:, -1])  # W space: one code for all layers
    # a perceptual loss from VGG16 weights in torchvision's layout (a narrow one here)
    torch.save(VGG16Features(width_divisor=16).state_dict(), tmp_path / "vgg.pth")
    out_p = tmp_path / "p.npy"
    assert (
        main([*base, "--steps", "3", "--vgg16", str(tmp_path / "vgg.pth"), "-o", str(out_p)]) == 0
    )
    assert np.load(out_p).shape == (1, G.num_ws, G.w_dim)
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "x.png")]) == 2
    assert ".npy" in capsys.readouterr().err
    wide = tmp_path / "wide.png"
    write_image(wide, np.zeros((16, 40, 3), np.uint8))
    assert main(["invert", str(wide), "--model", str(root / "tiny"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "40x16" in err and "square" in err
    assert main([*base, "--steps", "0", "-o", str(out)]) == 2
    assert main([*base, "--init", str(tmp_path / "missing.npy"), "-o", str(out)]) == 2
    assert "missing.npy" in capsys.readouterr().err

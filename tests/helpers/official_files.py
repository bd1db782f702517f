"""Official-format release files with random weights, for download -> bundle -> edit tests.

The key sets are the releases' own; sizes are the smallest the formats allow:

- ``e4e_ffhq_encode.pt``: the e4e encoder (its IR-SE-50 body is fixed by the format) with
  4 style heads, and under ``decoder.*`` a rosinality StyleGAN2 of 8 px (4 W+ rows),
  whose keys come from the ``stylegan2_rosinality`` parity fixture widened to 512-d
  styles; stored as float16 to halve the file (the loader casts to float32);
- ``latent_classifier_epoch_20.pth``: an LCNet state dict (``fcs.{i}``) on 4 x 512 codes
  with the release's 40 outputs;
- ``pretrained_models.zip``: ``001/tnet_{k}.pth.tar`` F_mapping state dicts
  (``dense.{i}``, 4 rows of 512) as the release zip nests them;
- an AttGAN release folder: ``setting.txt`` and ``checkpoint/weights.N.pth``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file

N_STYLES = 4  # an 8 px generator: 2*log2(8)-2 W+ rows
W_DIM = 512
TRANSFORMER_ATTRS = {31: "Smiling", 15: "Eyeglasses"}  # CelebA indices name the files


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _rosinality_decoder(g: torch.Generator, parity: Path) -> dict[str, torch.Tensor]:
    """An 8 px rosinality generator with 512-d styles (the fixture's 64 widened)."""
    small = load_file(str(parity / "stylegan2_rosinality" / "weights.safetensors"))
    out = {}
    for key, t in small.items():
        shape = tuple(W_DIM if d == 64 else d for d in t.shape)
        if key.endswith("kernel"):
            out[key] = t.float()
        elif key.startswith("style."):  # equalised lr 0.01: stored values 100x the used
            out[key] = torch.randn(shape, generator=g) * (100.0 if "weight" in key else 0.0)
        else:
            out[key] = torch.randn(shape, generator=g) * 0.2 + (
                1.0 if "modulation.bias" in key else 0.0
            )
    return out


def e4e_file(parity: Path) -> bytes:
    """``e4e_ffhq_encode.pt``: ``state_dict`` (``encoder.*``, ``decoder.*``), ``opts``,
    ``latent_avg [4, 512]``."""
    from faceedit.nets.encoders import E4EEncoder, E4EEncoderConfig

    g = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shapes = E4EEncoder(E4EEncoderConfig(n_styles=N_STYLES, use_latent_avg=False))
    state = {}
    for key, t in shapes.state_dict().items():
        if t.is_floating_point():
            value = torch.randn(t.shape, generator=g) * 0.05
            if key.endswith("running_var"):
                value = value.abs() + 1.0
            state["encoder." + key] = value.half()
        else:
            state["encoder." + key] = torch.zeros(t.shape, dtype=t.dtype)
    for key, value in _rosinality_decoder(g, parity).items():
        state["decoder." + key] = value
    return torch_bytes(
        {
            "state_dict": state,
            "opts": {"encoder_type": "Encoder4Editing", "stylegan_size": 8},
            "latent_avg": torch.randn(W_DIM, generator=g).repeat(N_STYLES, 1),
        }
    )


def classifier_file(hidden: tuple[int, ...] = (64, 32)) -> bytes:
    """``latent_classifier_epoch_20.pth``: LCNet ``fcs.{i}`` on 4 x 512 inputs, 40 outputs."""
    g = torch.Generator().manual_seed(1)
    widths = [N_STYLES * W_DIM, *hidden, 40]
    state = {}
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        state[f"fcs.{i}.weight"] = torch.randn(n_out, n_in, generator=g) / n_in**0.5
        state[f"fcs.{i}.bias"] = torch.zeros(n_out)
    return torch_bytes(state)


def transformers_zip() -> bytes:
    """``pretrained_models.zip`` with ``001/tnet_{k}.pth.tar`` (F_mapping, 4 rows)."""
    g = torch.Generator().manual_seed(2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k in TRANSFORMER_ATTRS:
            state = {}
            for i in range(N_STYLES):  # strong enough that an edit moves the face
                state[f"dense.{i}.weight"] = torch.randn(W_DIM, W_DIM, generator=g) / 8
                state[f"dense.{i}.bias"] = torch.randn(W_DIM, generator=g)
            z.writestr(f"001/tnet_{k}.pth.tar", torch_bytes(state))
    return buf.getvalue()


def attgan_release_folder(root: Path, name: str, img_size: int) -> Path:
    """``root/name`` laid out like the AttGAN release: ``setting.txt`` and
    ``checkpoint/weights.0.pth`` of a tiny AttGAN at ``img_size``."""
    from faceedit.checkpoints.attgan import save_release_checkpoint, setting_from_config
    from faceedit.nets.attgan import (
        AttGAN,
        AttGANConfig,
        AttGANDiscriminatorConfig,
        AttGANGeneratorConfig,
    )

    torch.manual_seed(0)
    g = AttGANGeneratorConfig(enc_dim=4, dec_dim=4, enc_layers=3, dec_layers=3, img_size=img_size)
    d = AttGANDiscriminatorConfig(dim=4, n_layers=3, fc_dim=8, img_size=img_size)
    model = AttGAN(AttGANConfig(G=g, D=d)).eval()
    folder = root / name
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "setting.txt").write_text(json.dumps(setting_from_config(model), indent=2))
    save_release_checkpoint(model, folder / "checkpoint" / "weights.0.pth")
    return folder

"""Datasets of encoded images: the W+ codes of a dataset, labelled by the dataset or by
what each code draws.

``faceedit data latents --encoder E --data DIR`` writes them (:func:`encode_dataset`): the
codes a latent classifier and transformers train on, with either the dataset's labels or,
given a generator and a labeller, the labeller's verdict on each code's reconstruction
(the way InterFaceGAN labels a latent space, applied to inverted images). It renders with
models and reads with a judge, so it lives above both, beside the other datasets built
from models (:mod:`faceedit.synth.labelled_samples`, :mod:`faceedit.synth.edited_latents`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from faceedit.data.latents import celeba_labels_text
from faceedit.errors import FaceeditError
from faceedit.fileio import atomic_dir, check_new_dir
from faceedit.lineage import LINEAGE_FILE, record, write_lineage
from faceedit.nets.latent_encoder import LatentEncoder
from faceedit.train.encoder import (
    ATTR_FILE,
    LABELS_META_FILE,
    dataset_files,
    load_images,
    to_model_range,
)
from faceedit.units import FRACTION


def _reconstruction_reader(E: LatentEncoder, generator, labeller, device: torch.device):
    """``(G, reader)`` that label codes by their reconstructions, or ``None`` (both unset)."""
    if generator is None and labeller is None:
        return None
    if generator is None or labeller is None:
        raise FaceeditError("labelling reconstructions needs both a generator and a labeller")
    from faceedit.synth.labelled_samples import load_labeller
    from faceedit.train.stylegan2 import load_found_generator

    G = load_found_generator(generator)
    if (G.num_ws, G.w_dim) != (E.num_ws, E.w_dim):
        raise FaceeditError(
            f"generator {generator}: codes [{G.num_ws}, {G.w_dim}], the encoder's are "
            f"[{E.num_ws}, {E.w_dim}]"
        )
    return G.to(device).eval(), load_labeller(labeller).to(device).eval()


def encode_dataset(
    encoder: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "all",
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
    generator: str | os.PathLike | None = None,
    labeller: str | os.PathLike | None = None,
) -> tuple[Path, int]:
    """Encode every image of ``data`` (one split or all) into W+.

    Writes ``out/codes.npy`` (``float32 [N, num_ws, w_dim]``) and ``out/list_attr_celeba.txt``
    (the dataset's label rows for those images, same order), the layout that ``faceedit
    train classifier --codes ... --labels ...`` reads. ``out`` appears complete or not at
    all (written under a temporary name, then renamed). Returns ``(out, N)``.

    With ``generator`` and ``labeller`` (an attribute reader such as ``avatar-oracle``),
    the labels are instead the reader's verdict on each code's reconstruction
    ``G.synthesis(E(x))``, read as ``faceedit eval`` reads an edit: what the code *draws*.
    An encoder that loses a mustache gives a code whose dataset label says "mustache";
    a latent classifier learns the wrong thing from that pair, and the edits it guides
    start from such codes. These pairs have the inverted images' distribution (which a
    generator's own samples, one ``w`` on every row, do not) and labels true to the codes.
    ``out/labels.json`` then records the sources and how often each attribute is on.
    ``out/lineage.json`` records the encoder, generator and labeller
    (:mod:`faceedit.lineage`).

    Raises:
        FaceeditError: a bad encoder, dataset, generator, labeller or output directory.
    """
    from tqdm import tqdm

    from faceedit.checkpoints import load
    from faceedit.errors import CheckpointError
    from faceedit.synth.labelled_samples import draw_and_read
    from faceedit.train.common import resolve_device

    out = check_new_dir(out)
    if batch_size < 1:
        raise FaceeditError(f"batch size must be at least 1, got {batch_size}")
    if not Path(encoder).exists():
        raise FaceeditError(f"{encoder}: no such encoder")
    try:
        E = load(encoder)
    except CheckpointError as e:
        raise FaceeditError(f"encoder: {e}") from None
    if not isinstance(E, LatentEncoder):
        raise FaceeditError(f"{encoder}: holds a {type(E).__name__}, not a latent encoder")
    dev = resolve_device(device)
    E = E.to(dev).eval()
    reader = _reconstruction_reader(E, generator, labeller, dev)
    root = Path(data)
    lineage = [
        *record("encoder", encoder),
        *record("generator", generator, part="generator"),
        *record("labeller", labeller, note="labelled each code's reconstruction"),
        *(record("data", root) if (root / LINEAGE_FILE).is_file() else []),
    ]
    files = dataset_files(root, split)
    labels_text: str | None = None  # the list_attr_celeba.txt to write
    read: list[np.ndarray] = []  # with a reader: its verdicts, one array per batch
    if (root / ATTR_FILE).is_file() and reader is None:
        lines = [ln for ln in (root / ATTR_FILE).read_text("utf-8").splitlines() if ln.strip()]
        by_name = {ln.split()[0]: ln for ln in lines[2:]}
        labels_text = f"{len(files)}\n{lines[1]}\n" + "".join(by_name[f] + "\n" for f in files)
    codes = np.empty((len(files), E.num_ws, E.w_dim), dtype=np.float32)
    bar = tqdm(total=len(files), desc="encoding", unit="img", disable=not progress)
    with torch.no_grad():
        for i in range(0, len(files), batch_size):
            chunk = load_images(root, files[i : i + batch_size], E.img_resolution)
            ws = E(to_model_range(chunk.images).to(dev))
            codes[i : i + len(chunk.files)] = ws.cpu().numpy()
            if reader is not None:
                read.append(draw_and_read(*reader, ws)[1])
            bar.update(len(chunk.files))
    bar.close()
    meta = None
    if reader is not None:
        names = tuple(reader[1].config.attr_names)
        verdicts = np.concatenate(read)  # [N, n_attrs] in {-1, 1}; N >= 1 (dataset_files)
        labels_text = celeba_labels_text(names, list(zip(files, verdicts.tolist(), strict=True)))
        sources = {"encoder": encoder, "data": data, "generator": generator, "labeller": labeller}
        meta = {
            **{k: str(v) for k, v in sources.items()},
            "split": split,
            "n": len(files),
            "on_rate": {
                a: round(float(r), 4) for a, r in zip(names, (verdicts > 0).mean(0), strict=True)
            },
            "units": {"on_rate": FRACTION},
        }
    with atomic_dir(out) as tmp:
        np.save(tmp / "codes.npy", codes)
        if labels_text is not None:
            (tmp / ATTR_FILE).write_text(labels_text, "utf-8")
        (tmp / "files.txt").write_text("".join(f + "\n" for f in files), "utf-8")
        write_lineage(tmp, lineage)
        if meta is not None:
            (tmp / LABELS_META_FILE).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return out, len(files)

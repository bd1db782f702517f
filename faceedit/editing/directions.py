"""InterFaceGAN-style linear editing directions in W+ (the baseline of the latent transformer).

Shen et al., "Interpreting the Latent Space of GANs for Semantic Face Editing" (CVPR 2020):
a linear classifier separates codes with and without an attribute; the unit normal ``n``
of its hyperplane is the editing direction, ``w' = w + s * n``. Conditional editing
projects ``n`` onto the orthogonal complement of other attributes' normals so that
moving along it leaves their linear scores unchanged.

Here the linear classifier is a logistic regression on the flattened W+ code (fitted for
all attributes at once with L-BFGS), and a strength of 1 moves a code by ``scale`` =
the standard deviation of the training codes' signed distances to the hyperplane, so
that strengths are comparable across attributes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceedit.errors import FaceeditError


@dataclass
class LinearDirections:
    """Unit directions per attribute.

    Attributes:
        attr_names: names, one per direction.
        directions: ``[K, num_ws, w_dim]``, each of unit norm over the flattened code.
        scale: ``[K]`` latent distance moved by strength 1.
        layers: ``(start, stop)`` rows that keep the edit (others restored), or ``None``.
    """

    attr_names: tuple[str, ...]
    directions: torch.Tensor
    scale: torch.Tensor
    layers: tuple[int, int] | None = None

    @property
    def attributes(self) -> list[str]:
        """The attributes it moves (a :class:`~faceedit.editing.base.LatentEditMethod`)."""
        return list(self.attr_names)

    def index(self, name: str) -> int:
        if name not in self.attr_names:
            raise FaceeditError(f"no direction for {name!r} (have: {', '.join(self.attr_names)})")
        return self.attr_names.index(name)

    @torch.no_grad()
    def edit_latents(
        self, ws: torch.Tensor, edits: Mapping[str, float | torch.Tensor]
    ) -> torch.Tensor:
        """``ws [N, num_ws, w_dim]`` moved by ``strength * scale * n`` per attribute, in order."""
        out = ws.clone()
        n = ws.shape[0]
        for name, strength in edits.items():
            k = self.index(name)
            s = torch.as_tensor(strength, dtype=ws.dtype).reshape(-1)
            s = s.expand(n) if s.numel() == 1 else s
            out = out + (s * self.scale[k]).view(n, 1, 1) * self.directions[k]
        if self.layers is not None:
            start, stop = self.layers
            out = torch.cat([ws[:, :start], out[:, start:stop], ws[:, stop:]], dim=1)
        return out

    def save(self, path: str | os.PathLike, lineage: list[dict] | None = None) -> Path:
        """Write a ``.npz`` with ``attr_names``, ``directions`` and ``scale``; with
        ``lineage`` (:mod:`faceedit.lineage` entries) also ``lineage``, their JSON text."""
        import json

        from faceedit.fileio import atomic_path

        path = Path(path)
        extra = {} if lineage is None else {"lineage": np.array(json.dumps(lineage))}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                attr_names=np.array(self.attr_names),
                directions=self.directions.numpy(),
                scale=self.scale.numpy(),
                **extra,
            )
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike, layers: tuple[int, int] | None = None
    ) -> LinearDirections:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    attr_names=tuple(str(s) for s in z["attr_names"]),
                    directions=torch.from_numpy(z["directions"]).float(),
                    scale=torch.from_numpy(z["scale"]).float(),
                    layers=layers,
                )
        except (OSError, KeyError, ValueError) as e:
            raise FaceeditError(f"{path}: not a directions file ({e})") from None


def fit_directions(
    codes: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    attr_names: Sequence[str],
    attrs: Sequence[int],
    orthogonal_to: Sequence[int] = (),
    weight_decay: float = 1e-3,
    max_iter: int = 100,
    max_samples: int = 10_000,
    seed: int = 0,
    layers: tuple[int, int] | None = None,
) -> LinearDirections:
    """Fit one logistic-regression direction per attribute in ``attrs``.

    Args:
        codes: ``[N, num_ws, w_dim]`` training codes.
        labels: ``[N, n_attrs]`` in {0, 1}.
        attrs: label columns to fit.
        orthogonal_to: label columns whose directions are projected out of every fitted
            direction (conditional editing; a column never conditions itself).
        max_samples: random subset size for the fit (the fit is full-batch).
    """
    codes = torch.as_tensor(codes).float()
    labels = torch.as_tensor(labels).float()
    n, num_ws, w_dim = codes.shape
    if n > max_samples:
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(n, generator=g)[:max_samples]
        codes, labels = codes[pick], labels[pick]
    x = codes.reshape(codes.shape[0], -1)
    mean = x.mean(0)
    xc = x - mean
    cols = sorted(set(attrs) | set(orthogonal_to))
    y = labels[:, cols]
    weight = torch.zeros(x.shape[1], len(cols), requires_grad=True)
    bias = torch.zeros(len(cols), requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xc @ weight + bias, y)
        loss = loss + weight_decay * weight.pow(2).sum(0).mean()
        loss.backward()
        return loss

    opt.step(closure)
    normals = F.normalize(weight.detach().T, dim=1)  # [len(cols), D]
    pos = {c: i for i, c in enumerate(cols)}
    dirs, scales = [], []
    for a in attrs:
        d = normals[pos[a]]
        cond = [normals[pos[c]] for c in orthogonal_to if c != a]
        if cond:
            q, _ = torch.linalg.qr(torch.stack(cond, dim=1))  # orthonormal basis [D, m]
            d = F.normalize(d - q @ (q.T @ d), dim=0)
        dirs.append(d)
        scales.append((xc @ d).std().clamp(min=1e-6))
    return LinearDirections(
        attr_names=tuple(attr_names[a] for a in attrs),
        directions=torch.stack(dirs).reshape(len(attrs), num_ws, w_dim),
        scale=torch.stack(scales),
        layers=layers,
    )

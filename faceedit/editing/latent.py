"""Attribute editing in StyleGAN2's W+ space with latent transformers.

Follows the original's ``test.py`` / notebooks (Yao et al., ICCV 2021): each requested
attribute's transformer is applied in sequence, ``w <- T_k(w, strength_k)``, and at the
end only the edited rows (by default rows 0-10 of 18) are kept; the remaining rows are
restored from the input code, which keeps the fine details (colour, texture) unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from faceedit.errors import FaceeditError
from faceedit.nets.latent import LatentClassifier, LatentTransformer

DEFAULT_LAYERS = (0, 11)  # rows [0, 11) edited, as in the original's test.py


@dataclass
class EditResult:
    """Output of :meth:`LatentEditor.edit`.

    Attributes:
        image: edited image ``[N, 3, H, W]`` in [-1, 1] (``None`` without a generator).
        ws: input codes ``[N, num_ws, w_dim]``.
        edited_ws: edited codes ``[N, num_ws, w_dim]``.
        scores: classifier probabilities ``{attr: [N]}`` of the edited codes (empty
            without a classifier).
    """

    image: torch.Tensor | None
    ws: torch.Tensor
    edited_ws: torch.Tensor
    scores: dict[str, torch.Tensor]


class LatentEditor:
    """Edit W+ codes (and images, given a generator and an inverter) with transformers.

    Args:
        transformers: ``{attr_name: LatentTransformer}``.
        generator: optional StyleGAN2 generator (``G.synthesis(ws) -> img``) for rendering.
        classifier: optional latent classifier for attribute scores.
        inverter: optional ``img [N,3,H,W] -> ws [N,num_ws,w_dim]`` (an encoder).
        layers: ``(start, stop)`` rows that keep the edit; others come from the input.
            ``None`` edits every row. Clipped to ``num_ws``.
    """

    def __init__(
        self,
        transformers: Mapping[str, LatentTransformer],
        generator: nn.Module | None = None,
        classifier: LatentClassifier | None = None,
        inverter: Callable[[torch.Tensor], torch.Tensor] | None = None,
        layers: tuple[int, int] | None = DEFAULT_LAYERS,
    ) -> None:
        if not transformers:
            raise FaceeditError("LatentEditor needs at least one transformer")
        self.transformers = dict(transformers)
        first = next(iter(self.transformers.values())).config
        for name, t in self.transformers.items():
            if (t.config.num_ws, t.config.w_dim) != (first.num_ws, first.w_dim):
                raise FaceeditError(f"transformer {name!r} has a different W+ shape")
        self.num_ws, self.w_dim = first.num_ws, first.w_dim
        if generator is not None:
            g_shape = (int(generator.num_ws), int(generator.w_dim))
            if g_shape != (self.num_ws, self.w_dim):
                raise FaceeditError(
                    f"generator W+ is {g_shape[0]}x{g_shape[1]} but the transformers "
                    f"edit {self.num_ws}x{self.w_dim}"
                )
        if layers is not None:
            start, stop = int(layers[0]), min(int(layers[1]), self.num_ws)
            if not 0 <= start < stop:
                raise FaceeditError(f"layer range {layers} is empty for {self.num_ws} rows")
            layers = (start, stop)
        self.layers = layers
        self.generator = generator
        self.classifier = classifier
        self.inverter = inverter

    @classmethod
    def from_paths(
        cls,
        transformer_paths: Mapping[str, str | os.PathLike] | list[str | os.PathLike],
        **kwargs,
    ) -> LatentEditor:
        """Load transformers (``tnet_{k}.pth.tar`` files or faceedit directories)."""
        from faceedit.checkpoints import load

        items = (
            transformer_paths.items()
            if isinstance(transformer_paths, Mapping)
            else [(None, p) for p in transformer_paths]
        )
        out: dict[str, LatentTransformer] = {}
        for name, path in items:
            model = load(path)
            if not isinstance(model, LatentTransformer):
                raise FaceeditError(f"{path}: not a latent transformer")
            key = name or model.config.attr_name or Path(path).stem
            out[key] = model
        return cls(out, **kwargs)

    @property
    def attributes(self) -> list[str]:
        return list(self.transformers)

    def _check(self, ws: torch.Tensor) -> torch.Tensor:
        if ws.dim() == 2 and ws.shape[1] == self.w_dim:
            ws = ws.unsqueeze(1).repeat(1, self.num_ws, 1)  # a W code: broadcast to W+
        if ws.dim() != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise FaceeditError(
                f"expected ws [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}"
            )
        return ws

    @torch.no_grad()
    def edit_latents(
        self, ws: torch.Tensor, edits: Mapping[str, float | torch.Tensor]
    ) -> torch.Tensor:
        """Apply ``{attr: strength}`` in order; strengths are numbers or ``[N]`` tensors.

        Args:
            ws: ``[N, num_ws, w_dim]`` (or W codes ``[N, w_dim]``).
        Returns:
            ``[N, num_ws, w_dim]``; rows outside ``layers`` equal the input's.
        """
        ws = self._check(ws)
        out = ws
        for name, strength in edits.items():
            if name not in self.transformers:
                raise FaceeditError(
                    f"no transformer for attribute {name!r} (have: {', '.join(self.transformers)})"
                )
            t = self.transformers[name]
            out = t(out.to(next(t.parameters()).dtype), strength)
        if self.layers is not None:
            start, stop = self.layers
            out = torch.cat([ws[:, :start], out[:, start:stop], ws[:, stop:]], dim=1)
        return out

    @torch.no_grad()
    def render(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """``G.synthesis(ws)``: ``[N, 3, H, W]`` in [-1, 1]."""
        if self.generator is None:
            raise FaceeditError("rendering needs a generator (pass generator= / --model)")
        return self.generator.synthesis(ws, noise_mode=noise_mode).clamp(-1, 1)

    @torch.no_grad()
    def scores(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Classifier probabilities ``{attr: [N]}`` (empty without a classifier)."""
        if self.classifier is None:
            return {}
        from faceedit.data.latents import CELEBA_ATTRS

        probs = torch.sigmoid(self.classifier(ws))
        names = self.classifier.config.attr_names or (
            CELEBA_ATTRS if probs.shape[1] == len(CELEBA_ATTRS) else ()
        )
        return {n: probs[:, i] for i, n in enumerate(names)}

    @torch.no_grad()
    def edit(
        self,
        source: torch.Tensor,
        edits: Mapping[str, float | torch.Tensor],
        render: bool = True,
    ) -> EditResult:
        """Edit codes ``[N, num_ws, w_dim]`` or images ``[N, 3, H, W]`` in [-1, 1].

        Images need an ``inverter``; the edited image needs a ``generator``.
        """
        if source.dim() == 4:
            if self.inverter is None:
                raise FaceeditError("editing images needs an inverter (an encoder)")
            ws = self.inverter(source)
        else:
            ws = source
        ws = self._check(ws)
        edited = self.edit_latents(ws, edits)
        image = self.render(edited) if render and self.generator is not None else None
        return EditResult(image=image, ws=ws, edited_ws=edited, scores=self.scores(edited))

    @torch.no_grad()
    def strip(
        self, ws: torch.Tensor, edits: Mapping[str, float], strengths: list[float]
    ) -> torch.Tensor:
        """Images over a sweep: for each ``t`` in ``strengths``, apply ``{a: t * s_a}``.

        Returns ``img [N, len(strengths), 3, H, W]`` in [-1, 1].
        """
        ws = self._check(ws)
        images = [
            self.render(self.edit_latents(ws, {a: t * s for a, s in edits.items()}))
            for t in strengths
        ]
        return torch.stack(images, dim=1)

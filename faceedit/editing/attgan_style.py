"""AttGAN attribute style (He et al., IEEE TIP 2019, Sec. III-D): several looks of one
attribute (kinds of glasses, hair styles) chosen by per-attribute style controllers.

The controllers ``theta [N, n_attrs, style_dim]`` are learned during training (flag
``style_dim > 0`` in the training config) by maximising the mutual information between
``theta`` and the generated image: the discriminator's style head recovers ``theta``
from ``G(x, b, theta)`` and both networks minimise the recovery error (see
:mod:`faceedit.train.attgan`). At editing time, switching an attribute on and varying
its controllers gives different styles of it.
"""

from __future__ import annotations

import numpy as np
import torch

from faceedit.editing.attgan import AttGANEditor, _to_uint8
from faceedit.errors import FaceeditError


def style_codes(
    n_attrs: int, style_dim: int, attr_index: int, values: torch.Tensor
) -> torch.Tensor:
    """Controllers that vary only attribute ``attr_index``: ``[len(values), n_attrs, style_dim]``.

    ``values [K, style_dim]`` in [-1, 1] (the training range); the other attributes'
    controllers are 0 (their average style).
    """
    theta = torch.zeros(len(values), n_attrs, style_dim)
    theta[:, attr_index] = values
    return theta


def style_values(style_dim: int, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` controller settings: a sweep of the first axis for ``style_dim == 1``,
    otherwise seeded uniform samples in [-1, 1]: ``[n, style_dim]``."""
    if style_dim == 1:
        return torch.linspace(-1, 1, n)[:, None]
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, style_dim), generator=gen) * 2 - 1


def style_grid(
    editor: AttGANEditor, image, attr: str, n_styles: int = 6, seed: int = 0, current=None
) -> np.ndarray:
    """One row per input image: input, then ``attr`` switched on in ``n_styles`` styles.

    Returns ``uint8 [H, W, 3]`` (a labelled grid).
    """
    from faceedit.viz import image_grid

    cfg = editor.config
    if cfg.style_dim == 0:
        raise FaceeditError(
            "this model has no style controllers; train with style_dim > 0 to use --style"
        )
    editor._check_names([attr])
    j = editor.names.index(attr)
    img = editor.preprocess(image)
    att = editor.current_attrs(img, current)
    values = style_values(cfg.style_dim, n_styles, seed)
    cols = [_to_uint8(img)]
    for k in range(n_styles):
        theta = style_codes(cfg.n_attrs, cfg.style_dim, j, values[k : k + 1]).expand(
            len(img), -1, -1
        )
        out = editor.edit(img, {attr: cfg.test_int}, current=att, style=theta.contiguous())
        cols.append(list(out.image))
    cells = [[c[r] for c in cols] for r in range(len(img))]
    labels = ["input"] + [f"style {k + 1}" for k in range(n_styles)]
    return image_grid(cells, col_labels=labels, title=f"{attr}: styles", cell_size=editor.cell_size)

"""``--invert`` and the pivotal-tuning options, shared by ``edit``, ``video``, ``invert`` and
``eval avatars`` (:mod:`faceedit.editing.pti`)."""

from __future__ import annotations

import argparse

#: the latent inversions a verb that loads a bundle offers
INVERT_CHOICES = ("auto", "encoder", "optimize", "pti")
#: option name on the command line -> Inversion field
PTI_FIELDS = {
    "pti_steps": "pti_steps",
    "pti_lr": "pti_lr",
    "pti_locality": "pti_locality",
    "pti_radius": "pti_radius",
    "pti_perceptual": "pti_perceptual",
    "pti_perceptual_weight": "pti_perceptual_weight",
}


def add_pti_arguments(p: argparse.ArgumentParser) -> None:
    """``--pti-steps``, ``--pti-lr``, ``--pti-locality``, ``--pti-radius`` and
    ``--pti-perceptual`` (defaults: :mod:`faceedit.editing.pti`'s)."""
    from faceedit.editing import pti

    g = p.add_argument_group(
        "pivotal tuning (--invert pti)",
        "The encoder's code (a projection's without an encoder) is the pivot; a copy of "
        "the generator is then tuned so that the pivot draws the image, with a locality "
        "term that keeps codes near the pivot drawn as the original generator draws them. "
        "The shipped generator is never changed.",
    )
    g.add_argument(
        "--pti-steps", type=int, default=None, help=f"tuning steps ({pti.DEFAULT_STEPS})"
    )
    g.add_argument(
        "--pti-lr", type=float, default=None, help=f"tuning learning rate ({pti.DEFAULT_LR:g})"
    )
    g.add_argument(
        "--pti-locality",
        type=float,
        default=None,
        help=f"weight of the locality regulariser ({pti.DEFAULT_LOCALITY:g}; 0: off)",
    )
    g.add_argument(
        "--pti-radius",
        type=float,
        default=None,
        help=f"how far towards random codes the locality codes lie, 0..1 ({pti.DEFAULT_RADIUS:g})",
    )
    g.add_argument(
        "--pti-perceptual",
        default=None,
        metavar="NET",
        help="perceptual network: auto (the domain's default: pixels), pixels (multiscale "
        "pixel loss), torchvision VGG16 weights (.pth) or an avatar oracle (e.g. "
        "avatar-oracle); never an evaluation judge",
    )
    g.add_argument(
        "--pti-perceptual-weight",
        type=float,
        default=None,
        metavar="W",
        help="weight of the perceptual (or multiscale pixel) terms next to the pixel MSE "
        f"({pti.DEFAULT_PERCEPTUAL_WEIGHT:g})",
    )


def pti_options(args: argparse.Namespace) -> dict:
    """The PTI options given on the command line (unset ones keep their defaults)."""
    out = {}
    for name, fieldname in PTI_FIELDS.items():
        value = getattr(args, name, None)
        if value is not None:
            out[fieldname] = value
    return out


def check_pti_options(args: argparse.Namespace) -> None:
    """Refuse ``--pti-*`` options without ``--invert pti`` (one line)."""
    from faceedit.errors import FaceeditError

    given = [f"--{k.replace('_', '-')}" for k in pti_options(args)]
    if given and getattr(args, "invert", None) != "pti":
        raise FaceeditError(f"{', '.join(given)}: only with --invert pti")


def load_pti_networks(editor) -> None:
    """Load a PTI editor's perceptual network now, so that a bad ``--pti-perceptual``
    fails before any work (a no-op for other inversions and methods)."""
    crop_editor = getattr(editor, "editor", editor)
    if getattr(crop_editor, "settings", dict)().get("invert") == "pti":
        crop_editor.perceptual_network()

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


def _defaults() -> dict:
    """Each ``--pti-*`` option's default (:mod:`faceedit.editing.pti_defaults`: no torch
    while the parsers are built)."""
    from faceedit.editing import pti_defaults as d

    return {
        "pti_steps": d.DEFAULT_STEPS,
        "pti_lr": d.DEFAULT_LR,
        "pti_locality": d.DEFAULT_LOCALITY,
        "pti_radius": d.DEFAULT_RADIUS,
        "pti_perceptual": d.DEFAULT_PERCEPTUAL,
        "pti_perceptual_weight": d.DEFAULT_PERCEPTUAL_WEIGHT,
    }


def add_pti_arguments(p: argparse.ArgumentParser) -> None:
    """``--pti-steps``, ``--pti-lr``, ``--pti-locality``, ``--pti-radius``,
    ``--pti-perceptual`` and ``--pti-perceptual-weight`` (defaults:
    :mod:`faceedit.editing.pti`'s)."""
    d = _defaults()
    g = p.add_argument_group(
        "pivotal tuning (--invert pti)",
        "The encoder's code (a projection's without an encoder) is the pivot; a copy of "
        "the generator is then tuned so that the pivot draws the image, with a locality "
        "term that keeps codes near the pivot drawn as the original generator draws them. "
        "The shipped generator is never changed.",
    )
    g.add_argument("--pti-steps", type=int, default=d["pti_steps"], help="tuning steps")
    g.add_argument("--pti-lr", type=float, default=d["pti_lr"], help="tuning learning rate")
    g.add_argument(
        "--pti-locality",
        type=float,
        default=d["pti_locality"],
        metavar="W",
        help="weight of the locality regulariser (0: off)",
    )
    g.add_argument(
        "--pti-radius",
        type=float,
        default=d["pti_radius"],
        metavar="R",
        help="how far towards random codes the locality codes lie, 0..1",
    )
    g.add_argument(
        "--pti-perceptual",
        default=d["pti_perceptual"],
        metavar="NET",
        help="perceptual network: auto (the domain's default: pixels), pixels (multiscale "
        "pixel loss), torchvision VGG16 weights (.pth) or an avatar oracle (e.g. "
        "avatar-oracle); never an evaluation judge",
    )
    g.add_argument(
        "--pti-perceptual-weight",
        type=float,
        default=d["pti_perceptual_weight"],
        metavar="W",
        help="weight of the perceptual (or multiscale pixel) terms next to the pixel MSE",
    )


def pti_options(args: argparse.Namespace) -> dict:
    """The PTI options of the command line, as :class:`Inversion` fields."""
    return {
        field: getattr(args, name)
        for name, field in PTI_FIELDS.items()
        if getattr(args, name, None) is not None
    }


def check_pti_options(args: argparse.Namespace) -> None:
    """Refuse ``--pti-*`` options set away from their defaults without ``--invert pti``."""
    from faceedit.errors import FaceeditError

    d = _defaults()
    given = [f"--{k.replace('_', '-')}" for k, v in pti_options(args).items() if v != d[k]]
    if given and getattr(args, "invert", None) != "pti":
        raise FaceeditError(f"{', '.join(given)}: only with --invert pti")


def load_pti_networks(editor) -> None:
    """Load a PTI editor's perceptual network now, so that a bad ``--pti-perceptual``
    fails before any work (a no-op for other inversions and methods)."""
    crop_editor = getattr(editor, "editor", editor)
    if getattr(crop_editor, "settings", dict)().get("invert") == "pti":
        crop_editor.perceptual_network()

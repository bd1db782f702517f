"""Attribute names and the rules that tie them, shared by every layer that names attributes.

- :data:`CELEBA_ATTRS`: CelebA's 40 attributes in ``list_attr_celeba.txt`` order (the
  columns of the released latent classifier, ``tnet_{k}`` = attribute ``k``);
- AttGAN's conflict rules (He et al., IEEE TIP 2019; the release's ``check_attribute_conflict``
  in elvisyjlin/AttGAN-PyTorch ``data.py``): attributes that an attribute switched on turns
  off, the release's for CelebA and the avatar domain's, and the release's
  "flip each attribute" targets built with them.

Nothing here imports the rest of faceedit but its errors: checkpoint readers, training
loops and editors all use these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from faceedit.errors import FaceeditError

if TYPE_CHECKING:  # torch loads only when a rule is applied: the names are plain data
    import torch

# CelebA's 40 attributes in the standard order (index = attribute number of tnet_{k}).
CELEBA_ATTRS: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
    "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
# attribute switched on -> attributes that must then be off
CONFLICTS: dict[str, tuple[str, ...]] = {
    "Bald": ("Bangs",),
    "Receding_Hairline": ("Bangs",),
    "Bangs": ("Bald", "Receding_Hairline"),
    **{c: tuple(o for o in HAIR_COLOURS if o != c) for c in HAIR_COLOURS},
    "Straight_Hair": ("Wavy_Hair",),
    "Wavy_Hair": ("Straight_Hair",),
    "Mustache": ("No_Beard",),
    "No_Beard": ("Mustache",),
}

_AVATAR_HAIR = ("Black_Hair", "Blond_Hair", "Brown_Hair")
# The avatar domain (faceedit.data.avatars): a hat hides the hair, the bald top draws
# none, and a hair colour needs hair that shows. These are the label couplings of
# ``COUPLED_ATTRIBUTES`` there; an edit condition that breaks them asks the generator
# for a combination it never saw in training.
AVATAR_CONFLICTS: dict[str, tuple[str, ...]] = {
    "Bald": (*_AVATAR_HAIR, "Wearing_Hat"),
    "Wearing_Hat": (*_AVATAR_HAIR, "Bald"),
    **{c: (*(o for o in _AVATAR_HAIR if o != c), "Wearing_Hat") for c in _AVATAR_HAIR},
    "Mustache": ("No_Beard",),
    "No_Beard": ("Mustache",),
}

# the rule sets a model's ``conflict_rules`` may name
CONFLICT_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "release": CONFLICTS,
    "avatars": AVATAR_CONFLICTS,
}


def conflict_rules(name: str) -> dict[str, tuple[str, ...]]:
    """The rule set called ``name`` (see :data:`CONFLICT_RULES`)."""
    try:
        return CONFLICT_RULES[name]
    except KeyError:
        raise FaceeditError(
            f"unknown conflict rules {name!r} (known: {', '.join(CONFLICT_RULES)})"
        ) from None


def resolve_conflicts(
    att: torch.Tensor,
    changed: str,
    names: Sequence[str],
    keep: Sequence[str] = (),
    rules: Mapping[str, Sequence[str]] = CONFLICTS,
) -> torch.Tensor:
    """Turn off the attributes that contradict ``changed`` when it is on.

    ``att {0,1} [N, n_attrs]`` (modified copy returned); ``keep`` names are never touched
    (attributes the user set explicitly); ``rules`` maps an attribute to those it excludes.
    """
    att = att.clone()
    if changed not in names:
        return att
    on = att[:, names.index(changed)] > 0.5
    for other in rules.get(changed, ()):
        if other in names and other not in keep:
            j = names.index(other)
            att[on, j] = 0.0
    return att


def flip_targets(
    att: torch.Tensor,
    names: Sequence[str],
    thres_int: float,
    test_int: float,
    rules: Mapping[str, Sequence[str]] = CONFLICTS,
):
    """The release's "flip each attribute" inputs: ``[n_attrs, N, n_attrs]``.

    For attribute ``i``: ``b = 1 - a`` on attribute ``i`` only, conflicts resolved with
    ``rules``, scaled to ``+-thres_int``, and attribute ``i`` itself to ``+-test_int``.
    """
    import torch

    out = []
    for i, name in enumerate(names):
        b = att.clone().float()
        b[:, i] = 1 - b[:, i]
        b = resolve_conflicts(b, name, names, rules=rules)
        b_ = (b * 2 - 1) * thres_int
        b_[:, i] = b_[:, i] * (test_int / thres_int)
        out.append(b_)
    return torch.stack(out)

"""The avatar face domain: labelled synthetic faces with exact ground truth.

Faces are DiceBear "avataaars" avatars (art by Pablo Stanley, free for personal and
commercial use; ``dicebear-core`` + ``dicebear-styles``, MIT), rasterised with
``resvg-py``. Every option is set explicitly, so an avatar is a pure function of its
*record* (a flat dict of rendering parameters, the face's identity) and of the pixel
size; changing one parameter redraws only the part it belongs to. That gives every
image exact labels and every edit its ground truth: :func:`counterfactual` changes one
parameter and :func:`render_record` draws the result with the same code;
:func:`edit_attribute` turns an attribute on or off with the fewest parameter changes
(the ground truth against which an attribute edit is measured).

A dataset directory written by :func:`write_dataset` (``faceedit data avatars``)::

    images/000000.png ...      RGB PNGs, size x size, plain background
    list_attr_celeba.txt       CelebA format: count, attribute names, ``file v1 v2 ...``
                               (values -1/1)
    list_eval_partition.txt    CelebA format: ``file 0|1|2`` (train / val / test)
    params.jsonl               one ``{"file": ..., "params": {record}}`` per image
    dataset.json               n, size, seed, attribute names, package versions

Record parameters and the dicebear options they set (values are listed in
:data:`PARAMETERS`; colours are hex without ``#``):

====================  ================================================================
parameter             dicebear option
====================  ================================================================
``top``               ``topVariant`` (34 hair styles and hats); ``"none"`` sets
                      ``topProbability`` 0, a bald head
``hairColor``         ``hairColor`` (10): visible only under the 27 hair tops
``hatColor``          ``hatColor`` (14): visible only under the 7 hat tops
``skinColor``         ``skinColor`` (7)
``eyes``              ``eyesVariant`` (12)
``eyebrows``          ``eyebrowsVariant`` (13)
``mouth``             ``mouthVariant`` (12)
``accessories``       ``accessoriesVariant`` (7: six glasses and an eyepatch); ``"none"``
                      sets ``accessoriesProbability`` 0
``accessoriesColor``  ``accessoriesColor`` (14): glasses frames / eyepatch
``facialHair``        ``facialHairVariant`` (3 beards, 2 moustaches); ``"none"`` sets
                      ``facialHairProbability`` 0
``facialHairColor``   ``facialHairColor`` (10)
``clothes``           ``clothesVariant`` (9)
``clothesColor``      ``clothesColor`` (14)
``clothesGraphic``    ``clothesGraphicVariant`` (10): white, visible only on a
                      ``graphicShirt`` that is not white
``background``        ``backgroundColor``: one fixed plain colour, :data:`BACKGROUND`
====================  ================================================================


``noseVariant`` has one value and the dicebear ``seed`` is a constant, so neither is a
parameter. Binary attributes (CelebA names where the meaning matches) follow from the
record, and describe only what is visible:

==========================  ==========================================================
attribute                   is 1 when
==========================  ==========================================================
``Bald``                    ``top`` is ``"none"`` or ``"sides"`` (hair on the sides only)
``Black_Hair``              a hair top and ``hairColor`` 2c1b18
``Blond_Hair``              a hair top and ``hairColor`` d6b370 or ecdcbf
``Brown_Hair``              a hair top and ``hairColor`` 4a312c or 724133
``Eyeglasses``              ``accessories`` is one of the six glasses (sunglasses too)
``Mouth_Slightly_Open``     ``mouth`` in default, smile, tongue, concerned, disbelief,
                            grimace, screamOpen, vomit (lips apart)
``Mustache``                ``facialHair`` is moustacheFancy or moustacheMagnum
``No_Beard``                ``facialHair`` is not one of the three beards
``Pale_Skin``               ``skinColor`` ffdbb4
``Smiling``                 ``mouth`` in default, smile, tongue, twinkle
``Wearing_Hat``             ``top`` is hat, hijab, turban or one of the 4 winter hats
``Dark_Skin`` (extra)       ``skinColor`` 614335 or ae5d29
``Eyes_Closed`` (extra)     ``eyes`` closed or happy (both lids shut), unless behind the
                            opaque ``kurt`` glasses
==========================  ==========================================================

Hats hide the hair completely (their art references ``hatColor`` only; hijab included),
so hair colours count only under hair tops; the opaque ``kurt`` glasses hide the eyes
(:func:`visible_parameters` lists what shows). The hair colours b58143 (light brown,
between blond and brown), a55728 (auburn), c93305 (red), f59797 (pink) and e8e1e1
(grey) set no hair attribute. CelebA's ``Gray_Hair`` is not an attribute: a hat and
each visible hair colour exclude one another, so with ``Wearing_Hat`` at 20% four colour
attributes would need the other 80% exactly, leaving no bald heads and no slack; grey
hair stays an identity value of ``hairColor``. Head shares: hats 22%, bald heads 8%,
hair 70% (of all faces: ``sides``, the balding top, 14%; black, blond and brown 22%
each, other colours 4%), so ``Bald`` is 22%.

Sampling is stratified so that every attribute has at least 20% of each value by
construction: each group of parts (head, mouth, eyes, accessories, facial hair, skin)
draws its class from a shuffled *deck* whose class counts are the target shares times
``n`` rounded by largest remainder, and the concrete part is then drawn uniformly within
the class. The smallest target share is 22% (head classes), so every attribute holds at
least 20% of each value for any ``n >= 100`` (:data:`BALANCE_MIN_N`). Everything comes
from one ``random.Random(seed)`` in the parent process; workers only render, so outputs
are byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceedit.errors import DataError, FaceeditError
from faceedit.fileio import atomic_dir, check_new_dir
from faceedit.units import FRACTION

STYLE_NAME = "avataaars"
DICEBEAR_SEED = "faceedit"  # only names SVG ids; every visible option is set explicitly
BACKGROUND = "d9d2e9"  # a light lavender that no part palette uses
FORMAT_VERSION = 1
BALANCE_MIN_N = 100

HAT_TOPS = ("hat", "hijab", "turban", "winterHat1", "winterHat02", "winterHat03", "winterHat04")
BALDING_TOPS = ("sides",)
HAIR_TOPS = (
    "bigHair", "bob", "bun", "curly", "curvy", "dreads", "dreads01", "dreads02", "frida",
    "frizzle", "fro", "froBand", "longButNotTooLong", "miaWallace", "shaggy",
    "shaggyMullet", "shavedSides", "shortCurly", "shortFlat", "shortRound", "shortWaved",
    "sides", "straight01", "straight02", "straightAndStrand", "theCaesar",
    "theCaesarAndSidePart",
)  # fmt: skip
NO_TOP = "none"

HAIR_COLORS = (
    "2c1b18", "4a312c", "724133", "d6b370", "ecdcbf",
    "b58143", "a55728", "c93305", "f59797", "e8e1e1",
)  # fmt: skip
BLACK_HAIR = ("2c1b18",)
BROWN_HAIR = ("4a312c", "724133")
BLOND_HAIR = ("d6b370", "ecdcbf")
OTHER_HAIR = ("b58143", "a55728", "c93305", "f59797", "e8e1e1")

SKIN_COLORS = ("614335", "ae5d29", "d08b5b", "edb98a", "fd9841", "f8d25c", "ffdbb4")
PALE_SKIN = ("ffdbb4",)
DARK_SKIN = ("614335", "ae5d29")
MID_SKIN = ("d08b5b", "edb98a", "fd9841", "f8d25c")

# dicebear's clothes palette; its hat and accessories palettes add ffdeb5, which is
# left out because on pale skin (ffdbb4) it makes a hijab or glasses frames invisible
WEAR_COLORS = (
    "262e33", "65c9ff", "5199e4", "25557c", "e6e6e6", "929598", "3c4f5c", "b1e2ff",
    "a7ffc4", "ffafb9", "ffffb1", "ff488e", "ff5c5c", "ffffff",
)  # fmt: skip

EYES = (
    "closed", "cry", "default", "eyeRoll", "happy", "hearts", "side", "squint",
    "surprised", "wink", "winkWacky", "xDizzy",
)  # fmt: skip
EYES_CLOSED = ("closed", "happy")
EYES_OPEN = tuple(e for e in EYES if e not in EYES_CLOSED)
EYEBROWS = (
    "angry", "angryNatural", "default", "defaultNatural", "flatNatural", "frownNatural",
    "raisedExcited", "raisedExcitedNatural", "sadConcerned", "sadConcernedNatural",
    "unibrowNatural", "upDown", "upDownNatural",
)  # fmt: skip
# mouths by (smiling, lips apart)
MOUTH_CELLS: dict[tuple[bool, bool], tuple[str, ...]] = {
    (True, True): ("default", "smile", "tongue"),
    (True, False): ("twinkle",),
    (False, True): ("concerned", "disbelief", "grimace", "screamOpen", "vomit"),
    (False, False): ("eating", "sad", "serious"),
}
MOUTHS = tuple(sorted(m for cell in MOUTH_CELLS.values() for m in cell))
GLASSES = ("kurt", "prescription01", "prescription02", "round", "sunglasses", "wayfarers")
EYE_HIDING = ("kurt",)  # opaque lenses: the eyes behind them do not show
ACCESSORIES = (NO_TOP, "eyepatch", *GLASSES)
MOUSTACHES = ("moustacheFancy", "moustacheMagnum")
BEARDS = ("beardLight", "beardMajestic", "beardMedium")
FACIAL_HAIR = (NO_TOP, *BEARDS, *MOUSTACHES)
CLOTHES = (
    "blazerAndShirt", "blazerAndSweater", "collarAndSweater", "graphicShirt", "hoodie",
    "overall", "shirtCrewNeck", "shirtScoopNeck", "shirtVNeck",
)  # fmt: skip
CLOTHES_GRAPHICS = (
    "bat", "bear", "cumbia", "deer", "diamond", "hola", "pizza", "resist", "skull",
    "skullOutline",
)  # fmt: skip

#: every record parameter and its allowed values (the oracle's categorical heads)
PARAMETERS: dict[str, tuple[str, ...]] = {
    "top": (NO_TOP, *HAIR_TOPS, *HAT_TOPS),
    "hairColor": HAIR_COLORS,
    "hatColor": WEAR_COLORS,
    "skinColor": SKIN_COLORS,
    "eyes": EYES,
    "eyebrows": EYEBROWS,
    "mouth": MOUTHS,
    "accessories": ACCESSORIES,
    "accessoriesColor": WEAR_COLORS,
    "facialHair": FACIAL_HAIR,
    "facialHairColor": HAIR_COLORS,
    "clothes": CLOTHES,
    "clothesColor": WEAR_COLORS,
    "clothesGraphic": CLOTHES_GRAPHICS,
    "background": (BACKGROUND,),
}

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "Bald",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Eyeglasses",
    "Mouth_Slightly_Open",
    "Mustache",
    "No_Beard",
    "Pale_Skin",
    "Smiling",
    "Wearing_Hat",
    "Dark_Skin",
    "Eyes_Closed",
)

# Target shares of each stratified group. Head classes are the tightest: hats, bald
# heads and three hair colours exclude one another (see the module docstring).
HEAD_SHARES = {"hat": 0.22, "bald": 0.08, "hair": 0.70}
HAIR_COLOR_SHARES = {"black": 0.22, "brown": 0.22, "blond": 0.22, "other": 0.04}  # of all
BALDING_SHARE = 0.14  # of all faces: hair tops that are "sides" (bald crown)
MOUTH_SHARES = {(True, True): 0.30, (True, False): 0.20, (False, True): 0.30, (False, False): 0.20}
EYES_SHARES = {"closed": 0.25, "open": 0.75}
ACCESSORY_SHARES = {"glasses": 0.50, "none": 0.40, "eyepatch": 0.10}
FACIAL_HAIR_SHARES = {"none": 0.50, "moustache": 0.25, "beard": 0.25}
SKIN_SHARES = {"pale": 0.25, "dark": 0.25, "mid": 0.50}

SPLIT_NAMES = ("train", "val", "test")
IMAGE_DIR = "images"
ATTR_FILE = "list_attr_celeba.txt"
SPLIT_FILE = "list_eval_partition.txt"
PARAMS_FILE = "params.jsonl"
META_FILE = "dataset.json"

Record = dict[str, str]


# ----------------------------------------------------------------------------- sampling


def _counts(n: int, shares: Mapping[Any, float]) -> dict[Any, int]:
    """Split ``n`` into integer counts proportional to ``shares`` (largest remainder)."""
    total = sum(shares.values())
    exact = {k: n * v / total for k, v in shares.items()}
    counts = {k: math.floor(x) for k, x in exact.items()}
    left = n - sum(counts.values())
    # ties broken by the order of ``shares`` so the result is deterministic
    order = sorted(shares, key=lambda k: -(exact[k] - counts[k]))
    for k in order[:left]:
        counts[k] += 1
    return counts


def _deck(rng: random.Random, n: int, shares: Mapping[Any, float]) -> list[Any]:
    """A shuffled list of ``n`` class labels with exactly :func:`_counts` of each."""
    deck = [k for k, c in _counts(n, shares).items() for _ in range(c)]
    rng.shuffle(deck)
    return deck


def sample_records(n: int, seed: int = 0) -> list[Record]:
    """Draw ``n`` avatar records with stratified, balanced attributes.

    Args:
        n: number of records (>= 1). For ``n >= BALANCE_MIN_N`` every attribute of
            :data:`ATTRIBUTE_NAMES` has at least 20% of each value.
        seed: the only source of randomness; the same seed gives the same records.

    Returns:
        ``n`` records, each a dict with every key of :data:`PARAMETERS`.
    """
    if not isinstance(n, int) or n < 1:
        raise FaceeditError(f"number of avatars must be a positive integer, got {n!r}")
    rng = random.Random(seed)
    head = _deck(rng, n, HEAD_SHARES)
    n_hair = head.count("hair")
    hair_color_deck = _deck(rng, n_hair, HAIR_COLOR_SHARES)
    balding_share = BALDING_SHARE / HEAD_SHARES["hair"]
    balding_deck = _deck(rng, n_hair, {True: balding_share, False: 1 - balding_share})
    mouth = _deck(rng, n, MOUTH_SHARES)
    acc_classes = {"glasses": GLASSES, "none": (NO_TOP,), "eyepatch": ("eyepatch",)}
    accessories = [rng.choice(acc_classes[c]) for c in _deck(rng, n, ACCESSORY_SHARES)]
    # eyes are dealt only to faces whose eyes show, so that Eyes_Closed keeps its share
    shown = [i for i in range(n) if accessories[i] not in EYE_HIDING]
    closed = min(1.0, EYES_SHARES["closed"] * n / max(1, len(shown)))
    eyes: list[str | None] = [None] * n
    eye_deck = _deck(rng, len(shown), {"closed": closed, "open": 1 - closed})
    for i, c in zip(shown, eye_deck, strict=True):
        eyes[i] = c
    facial_hair = _deck(rng, n, FACIAL_HAIR_SHARES)
    skin = _deck(rng, n, SKIN_SHARES)

    color_classes = {
        "black": BLACK_HAIR, "brown": BROWN_HAIR, "blond": BLOND_HAIR, "other": OTHER_HAIR
    }  # fmt: skip
    non_balding = tuple(t for t in HAIR_TOPS if t not in BALDING_TOPS)
    records: list[Record] = []
    hair_i = 0
    for i in range(n):
        if head[i] == "hair":
            top = rng.choice(BALDING_TOPS if balding_deck[hair_i] else non_balding)
            hair_color = rng.choice(color_classes[hair_color_deck[hair_i]])
            hair_i += 1
        else:
            top = rng.choice(HAT_TOPS) if head[i] == "hat" else NO_TOP
            # hidden, but part of the identity: a counterfactual may uncover it
            hair_color = rng.choice(HAIR_COLORS)
        fh = {"none": (NO_TOP,), "moustache": MOUSTACHES, "beard": BEARDS}[facial_hair[i]]
        sk = {"pale": PALE_SKIN, "dark": DARK_SKIN, "mid": MID_SKIN}[skin[i]]
        record: Record = {
            "top": top,
            "hairColor": hair_color,
            "hatColor": rng.choice(WEAR_COLORS),
            "skinColor": rng.choice(sk),
            "eyes": rng.choice(
                EYES if eyes[i] is None else EYES_CLOSED if eyes[i] == "closed" else EYES_OPEN
            ),
            "eyebrows": rng.choice(EYEBROWS),
            "mouth": rng.choice(MOUTH_CELLS[mouth[i]]),
            "accessories": accessories[i],
            "accessoriesColor": rng.choice(WEAR_COLORS),
            "facialHair": rng.choice(fh),
            "facialHairColor": rng.choice(HAIR_COLORS),
            "clothes": rng.choice(CLOTHES),
            "clothesColor": rng.choice(WEAR_COLORS),
            "clothesGraphic": rng.choice(CLOTHES_GRAPHICS),
            "background": BACKGROUND,
        }
        records.append(record)
    return records


def validate_record(record: Mapping[str, str], where: str = "record") -> Record:
    """Check that ``record`` has exactly the keys of :data:`PARAMETERS` with allowed values.

    Raises:
        DataError: naming the first bad key or value.
    """
    if not isinstance(record, Mapping):
        raise DataError(
            f"{where}: expected a dict of avatar parameters, got {type(record).__name__}"
        )
    missing = [k for k in PARAMETERS if k not in record]
    if missing:
        raise DataError(f"{where}: missing parameter(s) {', '.join(missing)}")
    unknown = [k for k in record if k not in PARAMETERS]
    if unknown:
        raise DataError(
            f"{where}: unknown parameter(s) {', '.join(map(str, unknown))} "
            f"(known: {', '.join(PARAMETERS)})"
        )
    for key, allowed in PARAMETERS.items():
        if record[key] not in allowed:
            shown = ", ".join(allowed[:12]) + (", ..." if len(allowed) > 12 else "")
            raise DataError(f"{where}: {key}={record[key]!r} is not one of {shown}")
    return {k: record[k] for k in PARAMETERS}


def hair_visible(record: Mapping[str, str]) -> bool:
    """Whether ``hairColor`` shows: only hair tops draw hair (hats and bald heads do not)."""
    return record["top"] in HAIR_TOPS


def visible_parameters(record: Mapping[str, str]) -> tuple[str, ...]:
    """The parameters whose value shows in the image of ``record``.

    The others (hair colour under a hat, hat colour without one, the eyes behind
    opaque lenses, ...) change no pixel; an oracle cannot see them and an edit need
    not preserve them. Listed parameters show in general, not for every pair of
    values: behind opaque lenses the tear of ``eyes="cry"`` and the whites of
    ``"eyeRoll"`` still show at the frame, yet the eyes count as hidden there (and the
    eyebrows, mostly covered, count as shown); a hijab
    over a full beard covers the neckline that tells some clothes apart.
    """
    hidden = set()
    if record["top"] not in HAIR_TOPS:
        hidden.add("hairColor")
    if record["top"] not in HAT_TOPS:
        hidden.add("hatColor")
    if record["accessories"] == NO_TOP:
        hidden.add("accessoriesColor")
    if record["accessories"] in EYE_HIDING:
        hidden.add("eyes")
    if record["facialHair"] == NO_TOP:
        hidden.add("facialHairColor")
    if record["clothes"] != "graphicShirt" or record["clothesColor"] == "ffffff":
        hidden.add("clothesGraphic")  # the graphics are white
    return tuple(k for k in PARAMETERS if k not in hidden)


def attributes(record: Mapping[str, str]) -> dict[str, int]:
    """The binary attributes of a record, as CelebA values -1/1 (see the module docstring)."""
    hair = record["hairColor"] if hair_visible(record) else None
    on = {
        "Bald": record["top"] == NO_TOP or record["top"] in BALDING_TOPS,
        "Black_Hair": hair in BLACK_HAIR,
        "Blond_Hair": hair in BLOND_HAIR,
        "Brown_Hair": hair in BROWN_HAIR,
        "Eyeglasses": record["accessories"] in GLASSES,
        "Mouth_Slightly_Open": any(
            record["mouth"] in MOUTH_CELLS[(s, True)] for s in (True, False)
        ),
        "Mustache": record["facialHair"] in MOUSTACHES,
        "No_Beard": record["facialHair"] not in BEARDS,
        "Pale_Skin": record["skinColor"] in PALE_SKIN,
        "Smiling": any(record["mouth"] in MOUTH_CELLS[(True, o)] for o in (True, False)),
        "Wearing_Hat": record["top"] in HAT_TOPS,
        "Dark_Skin": record["skinColor"] in DARK_SKIN,
        "Eyes_Closed": record["eyes"] in EYES_CLOSED and record["accessories"] not in EYE_HIDING,
    }
    return {name: 1 if on[name] else -1 for name in ATTRIBUTE_NAMES}


def counterfactual(record: Mapping[str, str], **changes: str) -> Record:
    """The same face with some parameters changed: the ground truth of an edit.

    Example: ``counterfactual(r, mouth="smile")``; render it with :func:`render_record`.

    Raises:
        DataError: an unknown parameter or a value it does not take.
    """
    base = validate_record(record)
    for key in changes:
        if key not in PARAMETERS:
            raise DataError(
                f"counterfactual: unknown parameter {key!r} (known: {', '.join(PARAMETERS)})"
            )
    new = {**base, **changes}
    return validate_record(new, where="counterfactual")


#: attributes that an edit of the key may have to change too: they exclude one another
#: in this domain (a hat hides the hair; a face has a beard or a moustache, not both)
COUPLED_ATTRIBUTES: dict[str, frozenset[str]] = {
    **{
        a: frozenset({"Bald", "Wearing_Hat", "Black_Hair", "Blond_Hair", "Brown_Hair"}) - {a}
        for a in ("Bald", "Wearing_Hat", "Black_Hair", "Blond_Hair", "Brown_Hair")
    },
    "Mustache": frozenset({"No_Beard"}),
    "No_Beard": frozenset({"Mustache"}),
    "Pale_Skin": frozenset({"Dark_Skin"}),
    "Dark_Skin": frozenset({"Pale_Skin"}),
}


def _pick(record: Mapping[str, str], name: str, options: Sequence[str]) -> str:
    """A value from ``options`` that depends only on the record (not on any RNG), so the
    same face always gets the same edit; the current value is kept when it qualifies."""
    current = record.get(name)
    if current in options:
        return current  # type: ignore[return-value]
    key = "|".join(record[k] for k in PARAMETERS) + "|" + name
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return options[digest % len(options)]


def edit_options(
    record: Mapping[str, str], name: str, value: int | bool = True
) -> dict[str, tuple[str, ...]]:
    """What an attribute edit may change, and to what: ``{parameter: candidate values}``
    (one candidate where the edit is forced, e.g. taking glasses off). Empty when the
    attribute already has ``value``. :func:`edit_attribute` picks one candidate each.

    Raises:
        DataError: an unknown attribute or a bad record.
    """
    base = validate_record(record)
    if name not in ATTRIBUTE_NAMES:
        raise DataError(f"unknown attribute {name!r} (known: {', '.join(ATTRIBUTE_NAMES)})")
    on = bool(value) and value != -1
    if (attributes(base)[name] == 1) == on:
        return {}
    smiling = attributes(base)["Smiling"] == 1
    open_mouth = attributes(base)["Mouth_Slightly_Open"] == 1
    hair_tops = tuple(t for t in HAIR_TOPS if t not in BALDING_TOPS)
    colours = {"Black_Hair": BLACK_HAIR, "Blond_Hair": BLOND_HAIR, "Brown_Hair": BROWN_HAIR}
    # clear lenses only, so that the eyes (and Eyes_Closed) stay visible
    clear = tuple(g for g in GLASSES if g not in EYE_HIDING)
    options: dict[str, tuple[str, ...]] = {}
    if name == "Smiling":
        options["mouth"] = MOUTH_CELLS[(on, open_mouth)]
    elif name == "Mouth_Slightly_Open":
        options["mouth"] = MOUTH_CELLS[(smiling, on)]
    elif name == "Eyeglasses":
        options["accessories"] = clear if on else (NO_TOP,)
        if not on and base["accessories"] in EYE_HIDING and base["eyes"] in EYES_CLOSED:
            # closed eyes hidden by the lenses would show: they were not "closed" before
            options["eyes"] = EYES_OPEN
    elif name == "Eyes_Closed":
        options["eyes"] = EYES_CLOSED if on else EYES_OPEN
        if on and base["accessories"] in EYE_HIDING:
            options["accessories"] = clear
    elif name == "Mustache":
        options["facialHair"] = MOUSTACHES if on else (NO_TOP,)
    elif name == "No_Beard":
        options["facialHair"] = (NO_TOP,) if on else BEARDS
    elif name in ("Pale_Skin", "Dark_Skin"):
        target = PALE_SKIN if name == "Pale_Skin" else DARK_SKIN
        options["skinColor"] = target if on else MID_SKIN
    elif name == "Wearing_Hat":
        options["top"] = HAT_TOPS if on else hair_tops
    elif name == "Bald":
        options["top"] = (NO_TOP,) if on else hair_tops
    else:  # hair colours
        if on:
            options["hairColor"] = colours[name]
            if not hair_visible(base):
                options["top"] = hair_tops
        else:
            options["hairColor"] = OTHER_HAIR
    return options


# parameters that only colour a part: a colour edit has one answer up to its shade
COLOUR_PARAMETERS = ("hairColor", "skinColor")


def has_unique_truth(record: Mapping[str, str], name: str, value: int | bool = True) -> bool:
    """Whether the edit has one right answer: every part it redraws is forced (taking
    glasses, a beard or the hair off) or only recoloured. Edits that must draw a new shape
    chosen among several (glasses put on, a hair shape under a hat taken off, a new mouth)
    have several right answers, of which the ground truth is one."""
    return all(
        len(values) == 1 or key in COLOUR_PARAMETERS
        for key, values in edit_options(record, name, value).items()
    )


def edit_attribute(record: Mapping[str, str], name: str, value: int | bool = True) -> Record:
    """The ground truth of an attribute edit: ``record`` with ``name`` set to ``value``.

    Changes as few parameters as possible: the part that carries the attribute, and the
    top as well when a hair colour must become visible (:func:`edit_options`). Every other
    attribute keeps its value, except those of :data:`COUPLED_ATTRIBUTES` that cannot keep
    it (turning ``Wearing_Hat`` on hides the hair colour). The new part is chosen
    deterministically from the record.

    Args:
        record: avatar parameters.
        name: one of :data:`ATTRIBUTE_NAMES`.
        value: True/1 for on, False/0/-1 for off.

    Raises:
        DataError: an unknown attribute or a bad record.
    """
    base = validate_record(record)
    options = edit_options(base, name, value)
    if not options:
        return base
    return counterfactual(base, **{k: _pick(base, k, v) for k, v in options.items()})


# ---------------------------------------------------------------------------- rendering


def _require_packages() -> None:
    try:
        import dicebear  # noqa: F401
        import dicebear_styles  # noqa: F401
        import resvg_py  # noqa: F401
    except ImportError as e:
        raise FaceeditError(
            f"avatar rendering needs the 'avatars' extra ({e.name} is missing): "
            "pip install 'faceedit[avatars]'"
        ) from None


@functools.lru_cache(maxsize=1)
def _style() -> Any:
    _require_packages()
    from importlib import resources

    from dicebear import Style

    raw = (resources.files("dicebear_styles") / f"{STYLE_NAME}.json").read_text("utf-8")
    return Style.from_json(raw)


def dicebear_options(record: Mapping[str, str]) -> dict[str, Any]:
    """The dicebear options that draw ``record`` (every visible choice set explicitly)."""
    opts: dict[str, Any] = {
        "seed": DICEBEAR_SEED,
        "backgroundColor": record["background"],
        "skinColor": record["skinColor"],
        "hairColor": record["hairColor"],
        "hatColor": record["hatColor"],
        "eyesVariant": record["eyes"],
        "eyebrowsVariant": record["eyebrows"],
        "mouthVariant": record["mouth"],
        "noseVariant": "default",
        "accessoriesColor": record["accessoriesColor"],
        "facialHairColor": record["facialHairColor"],
        "clothesVariant": record["clothes"],
        "clothesColor": record["clothesColor"],
        "clothesGraphicVariant": record["clothesGraphic"],
    }
    for part, option in (
        ("top", "top"),
        ("accessories", "accessories"),
        ("facialHair", "facialHair"),
    ):
        if record[part] == NO_TOP:
            opts[f"{option}Probability"] = 0
        else:
            opts[f"{option}Probability"] = 100
            opts[f"{option}Variant"] = record[part]
    return opts


def render_svg(record: Mapping[str, str], check_options: bool = False) -> str:
    """The SVG markup of ``record`` (280 x 280 view box).

    ``dicebear.Avatar`` checks every option dict against its JSON schema, which takes
    two thirds of its time. Records are already checked against :data:`PARAMETERS`
    (a subset of what the style accepts), so by default the resolver and renderer are
    called directly, with the same output (tested); ``check_options=True`` or a
    dicebear whose internals differ takes the public path.
    """
    opts = dicebear_options(record)
    if not check_options:
        try:
            return _render_unchecked(opts)
        except (ImportError, AttributeError, TypeError):
            pass
    from dicebear import Avatar

    return Avatar(_style(), opts).to_string()


def _render_unchecked(opts: dict[str, Any]) -> str:
    from dicebear.options import Options
    from dicebear.renderer import Renderer
    from dicebear.resolver import Resolver

    options = Options.__new__(Options)
    options._data = opts  # what Options.__init__ stores after validating
    options._tags = None
    style = _style()
    return Renderer(style, Resolver(style, options)).render()


def _rasterise(record: Mapping[str, str], size: int) -> Any:
    from PIL import Image
    from resvg_py import svg_to_bytes

    png = bytes(svg_to_bytes(svg_string=render_svg(record), width=size, height=size))
    with Image.open(io.BytesIO(png)) as img:
        # the background is opaque, so dropping alpha loses nothing
        return img.convert("RGB")


def render_record(record: Mapping[str, str], size: int = 64) -> np.ndarray:
    """Draw a record.

    Args:
        record: avatar parameters (see :data:`PARAMETERS`).
        size: output side in pixels.

    Returns:
        ``uint8 [size, size, 3]`` RGB image.
    """
    _check_size(size)
    return np.asarray(_rasterise(validate_record(record), size))


def render_png(record: Mapping[str, str], size: int = 64) -> bytes:
    """Draw a record as RGB PNG bytes (deterministic for a given record and size)."""
    _check_size(size)
    buf = io.BytesIO()
    # level 1: a third faster than the default, files 4% larger
    _rasterise(validate_record(record), size).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


MIN_SIZE, MAX_SIZE = 8, 2048


def _check_size(size: int) -> None:
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise FaceeditError(
            f"image size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {size!r}"
        )


# ------------------------------------------------------------------------------ writing


@dataclass(frozen=True)
class AvatarDataset:
    """What :func:`write_dataset` wrote."""

    root: Path
    n: int
    size: int
    seed: int
    split_counts: dict[str, int]


def image_name(index: int) -> str:
    return f"{index:06d}.png"


def split_assignment(n: int, seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> list[int]:
    """Split index (0 train, 1 val, 2 test) of each of ``n`` images, exact counts, seeded."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise FaceeditError(f"split fractions must be three non-negative numbers, got {fractions}")
    # a stream of its own, so changing the split never changes the faces
    return _deck(random.Random(f"split-{seed}"), n, dict(enumerate(fractions)))


def _package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("dicebear-core", "dicebear-styles", "resvg-py", "pillow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def _render_chunk(job: tuple[str, int, list[tuple[int, Record]]]) -> int:
    root, size, items = job
    folder = Path(root) / IMAGE_DIR
    for index, record in items:
        (folder / image_name(index)).write_bytes(render_png(record, size))
    return len(items)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def write_dataset(
    out_dir: str | os.PathLike,
    n: int,
    size: int = 64,
    seed: int = 0,
    workers: int | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    progress: bool = True,
    chunk: int = 64,
) -> AvatarDataset:
    """Render ``n`` avatars and their labels into ``out_dir`` (see the module docstring).

    The directory appears complete or not at all: everything is written into a
    temporary sibling that is renamed at the end. Outputs depend only on ``n``,
    ``size``, ``seed`` and ``split``, never on ``workers``.

    Raises:
        FaceeditError: the parent of ``out_dir`` is missing, ``out_dir`` is a
            non-empty directory or a file, or an argument is out of range.
    """
    _require_packages()
    if not isinstance(n, int) or n < 1:
        raise FaceeditError(f"number of avatars must be a positive integer, got {n!r}")
    _check_size(size)
    workers = default_workers() if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise FaceeditError(f"number of workers must be a positive integer, got {workers!r}")
    out = check_new_dir(out_dir)

    records = sample_records(n, seed)
    splits = split_assignment(n, seed, split)
    with atomic_dir(out) as tmp:
        (tmp / IMAGE_DIR).mkdir()
        _render_all(tmp, records, size, workers, progress, chunk)
        _write_labels(tmp, records, splits)
        meta = {
            "format": "faceedit-avatars",
            "format_version": FORMAT_VERSION,
            "style": STYLE_NAME,
            "n": n,
            "size": size,
            "seed": seed,
            "split_fractions": list(split),
            "split_counts": {s: splits.count(i) for i, s in enumerate(SPLIT_NAMES)},
            "background": BACKGROUND,
            "attribute_names": list(ATTRIBUTE_NAMES),
            "parameters": {k: list(v) for k, v in PARAMETERS.items()},
            "packages": _package_versions(),
            "units": {"split_fractions": FRACTION},
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    return AvatarDataset(out, n, size, seed, meta["split_counts"])


def _render_all(
    root: Path, records: list[Record], size: int, workers: int, progress: bool, chunk: int
) -> None:
    from tqdm import tqdm

    items = list(enumerate(records))
    jobs = [(str(root), size, items[i : i + chunk]) for i in range(0, len(items), chunk)]
    bar = tqdm(total=len(items), desc="avatars", unit="img", disable=not progress)
    try:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                bar.update(_render_chunk(job))
        else:
            # spawn, not fork: the parent may hold torch or tqdm threads, and forking a
            # threaded process can deadlock; workers only need this module
            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                for done in pool.imap_unordered(_render_chunk, jobs):
                    bar.update(done)
    finally:
        bar.close()


def _write_labels(root: Path, records: list[Record], splits: list[int]) -> None:
    from faceedit.data.latents import celeba_labels_text

    rows = []
    for i, record in enumerate(records):
        values = attributes(record)
        rows.append((image_name(i), [values[a] for a in ATTRIBUTE_NAMES]))
    (root / ATTR_FILE).write_text(celeba_labels_text(ATTRIBUTE_NAMES, rows), "utf-8")
    (root / SPLIT_FILE).write_text(
        "".join(f"{image_name(i)} {s}\n" for i, s in enumerate(splits)), "utf-8"
    )
    with open(root / PARAMS_FILE, "w", encoding="utf-8") as f:
        for i, record in enumerate(records):
            f.write(json.dumps({"file": image_name(i), "params": record}, sort_keys=False) + "\n")


# ------------------------------------------------------------------------------ reading


def read_params(path: str | os.PathLike) -> dict[str, Record]:
    """Read ``params.jsonl`` (or a dataset directory) into ``{file name: record}``.

    Raises:
        DataError: missing file, bad JSON or a bad record, naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PARAMS_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    out: dict[str, Record] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
                name, params = row["file"], row["params"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f'{where}: expected {{"file": ..., "params": {{...}}}}') from None
            out[name] = validate_record(params, where=where)
    return out


def read_attributes(path: str | os.PathLike) -> tuple[list[str], dict[str, list[int]]]:
    """Read a CelebA-format attribute file into ``(names, {file: [-1/1, ...]})``.

    Raises:
        DataError: naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / ATTR_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    lines = path.read_text("utf-8").splitlines()
    if len(lines) < 2:
        raise DataError(f"{path}: expected a count line and a line of attribute names")
    try:
        count = int(lines[0])
    except ValueError:
        raise DataError(f"{path}:1: expected the number of images, got {lines[0]!r}") from None
    names = lines[1].split()
    rows: dict[str, list[int]] = {}
    for lineno, line in enumerate(lines[2:], 3):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [int(v) for v in parts[1:]]
        except ValueError:
            values = []
        if len(values) != len(names) or any(v not in (-1, 1) for v in values):
            raise DataError(f"{path}:{lineno}: expected a file name and {len(names)} values -1/1")
        rows[parts[0]] = values
    if len(rows) != count:
        raise DataError(f"{path}: header says {count} images, found {len(rows)}")
    return names, rows


def attribute_shares(records: Iterable[Mapping[str, str]]) -> dict[str, float]:
    """Fraction of records with each attribute on (value 1)."""
    rows = [attributes(r) for r in records]
    if not rows:
        return {a: 0.0 for a in ATTRIBUTE_NAMES}
    return {a: sum(r[a] == 1 for r in rows) / len(rows) for a in ATTRIBUTE_NAMES}


@dataclass
class AvatarArrays:
    """One split of an avatar dataset, in memory.

    ``images uint8 [N, H, W, 3]``, ``attrs int8 [N, n_attrs]`` in {-1, 1} (columns in
    ``attr_names``), ``params int64 [N, n_params]``: the index of each parameter's value
    in ``PARAMETERS[name]`` (columns in ``param_names``), or -1 where the parameter does
    not show (:func:`visible_parameters`).
    """

    files: list[str]
    images: np.ndarray
    attrs: np.ndarray
    params: np.ndarray
    attr_names: tuple[str, ...]
    param_names: tuple[str, ...]


def load_arrays(
    root: str | os.PathLike,
    split: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> AvatarArrays:
    """Read a dataset written by :func:`write_dataset` into arrays.

    Args:
        root: the dataset directory.
        split: ``"train"``, ``"val"``, ``"test"`` or None for every image.
        limit: keep at most the first ``limit`` images of the split.
        progress: show a progress bar while decoding images.

    Raises:
        DataError: a missing or malformed file, an image of the wrong size.
    """
    from tqdm import tqdm

    from faceedit.data.images import read_image

    root = Path(root)
    if not (root / PARAMS_FILE).is_file():
        raise DataError(
            f"{root}: not an avatar dataset (no {PARAMS_FILE}; see 'faceedit data avatars')"
        )
    params = read_params(root)
    names, rows = read_attributes(root)
    files = list(params)
    if split is not None:
        if split not in SPLIT_NAMES:
            raise DataError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
        wanted = str(SPLIT_NAMES.index(split))
        split_path = root / SPLIT_FILE
        if not split_path.is_file():
            raise DataError(f"{split_path}: no such file")
        chosen = set()
        for lineno, line in enumerate(split_path.read_text("utf-8").splitlines(), 1):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(f"{split_path}:{lineno}: expected 'file 0|1|2'")
            if parts[1] == wanted:
                chosen.add(parts[0])
        files = [f for f in files if f in chosen]
    if limit is not None:
        files = files[:limit]
    missing = [f for f in files if f not in rows]
    if missing:
        raise DataError(f"{root / ATTR_FILE}: no labels for {missing[0]}")
    param_names = tuple(k for k, v in PARAMETERS.items() if len(v) > 1)
    index = {k: {v: i for i, v in enumerate(PARAMETERS[k])} for k in param_names}
    p = np.full((len(files), len(param_names)), -1, dtype=np.int64)
    for r, f in enumerate(files):
        record = params[f]
        shown = set(visible_parameters(record))
        for c, k in enumerate(param_names):
            if k in shown:
                p[r, c] = index[k][record[k]]
    images = []
    size = None
    for f in tqdm(files, desc="reading avatars", unit="img", disable=not progress):
        img = read_image(root / IMAGE_DIR / f)
        if size is None:
            size = img.shape[:2]
        elif img.shape[:2] != size:
            raise DataError(f"{root / IMAGE_DIR / f}: size {img.shape[:2]}, expected {size}")
        images.append(img)
    if not images:
        raise DataError(f"{root}: no images in split {split!r}")
    return AvatarArrays(
        files=files,
        images=np.stack(images),
        attrs=np.array([rows[f] for f in files], dtype=np.int8),
        params=p,
        attr_names=tuple(names),
        param_names=param_names,
    )

"""Units of the figures faceedit writes to JSON: one unit per kind of figure.

Every rate (accuracy, target change, preservation, identity preserved, on-rate, edits
that land, split shares) is a fraction in [0, 1], never a percent; PSNR is in dB; times
are in seconds. Every JSON file a verb writes names the units of its figures in a
``"units"`` entry built from these constants, so a reader never guesses. Imports nothing.
"""

from __future__ import annotations

FRACTION = "fraction in [0, 1]"
DECIBEL = "dB"
SECONDS = "seconds"
COSINE = "cosine similarity in [-1, 1]"
STRENGTH = "edit strength (multiple of the editing direction)"
UNITLESS = "unitless"


def with_units(data: dict, **units: str) -> dict:
    """``data`` plus ``"units": {figure: unit}`` (figures named as in ``data``)."""
    return {**data, "units": dict(units)}


__all__ = ["COSINE", "DECIBEL", "FRACTION", "SECONDS", "STRENGTH", "UNITLESS", "with_units"]

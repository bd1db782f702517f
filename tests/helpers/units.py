"""Check a JSON output's ``"units"`` entry against its figures."""

from __future__ import annotations

import math

from faceedit.units import FRACTION


def _values(data, key: str):
    """Every value stored under ``key`` anywhere in ``data`` (dicts and lists walked)."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k == key and k != "units":
                yield v
            elif k != "units":
                yield from _values(v, key)
    elif isinstance(data, list):
        for v in data:
            yield from _values(v, key)


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield float(value)


def assert_units(data: dict, *rates: str) -> None:
    """``data["units"]`` names every one of ``rates`` a fraction, and each is in [0, 1]."""
    units = data["units"]
    for name in rates:
        assert units.get(name) == FRACTION, (name, units)
    for name, unit in units.items():
        if unit != FRACTION:
            continue
        for value in _values(data, name):
            for x in _numbers(value):
                assert math.isnan(x) or 0.0 <= x <= 1.0, (name, x)

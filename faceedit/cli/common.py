"""Shared pieces of the CLI: verb registration and argument parsers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from faceedit.errors import FaceeditError


class Commands:
    """Adds verbs (``faceedit NAME``) and grouped verbs (``faceedit train NAME``)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._top = parser.add_subparsers(title="commands", metavar="COMMAND")
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def add(
        self,
        name: str,
        help: str,
        run: Callable[[argparse.Namespace], int | None],
        group: str | None = None,
        description: str | None = None,
    ) -> argparse.ArgumentParser:
        sub = self._top if group is None else self._group(group)
        parser = sub.add_parser(
            name,
            help=help,
            description=description or help,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        parser.set_defaults(run=run)
        return parser

    def _group(self, group: str) -> argparse._SubParsersAction:
        if group not in self._groups:
            parser = self._top.add_parser(group, help=_GROUP_HELP.get(group, group))
            parser.set_defaults(run=lambda args, p=parser: p.print_help() or 2)
            self._groups[group] = parser.add_subparsers(title=f"{group} commands", metavar="WHAT")
        return self._groups[group]


_GROUP_HELP = {
    "train": "train a model (classifier, transformer, attgan, stylegan2, ...)",
    "eval": "evaluate a model (latent, attgan, ...)",
    "data": "make datasets (avatars, ...)",
}


def parse_seeds(text: str) -> list[int]:
    """Parse ``"0-7"``, ``"1,5,9"`` or ``"0-3,10"`` into a list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if lo_i < 0 or hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            elif part:
                seeds.append(int(part))
                if seeds[-1] < 0:
                    raise ValueError
    except ValueError:
        raise FaceeditError(f"--seeds {text!r}: expected e.g. 0-7 or 1,5,9") from None
    if not seeds:
        raise FaceeditError(f"--seeds {text!r}: no seed given")
    return seeds


def parse_attr_strengths(items: list[str] | None) -> dict[str, float]:
    """Parse repeated ``--attr NAME=STRENGTH`` (strength defaults to 1) into a dict."""
    out: dict[str, float] = {}
    for item in items or []:
        name, _, value = item.partition("=")
        name = name.strip()
        if not name:
            raise FaceeditError(f"--attr {item!r}: expected NAME=STRENGTH, e.g. Smiling=1")
        try:
            out[name] = float(value) if value else 1.0
        except ValueError:
            raise FaceeditError(f"--attr {item!r}: strength {value!r} is not a number") from None
    return out


def parse_int(text: str, flag: str, minimum: int) -> int:
    """An integer option of at least ``minimum``; a one-line error naming ``flag`` if not."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise FaceeditError(f"{flag} {text!r}: expected an integer") from None
    if value < minimum:
        raise FaceeditError(f"{flag} {text!r}: must be at least {minimum}")
    return value


def parse_float(text: str, flag: str, allow_zero: bool = False) -> float:
    """A finite positive (or, with ``allow_zero``, non-negative) number option."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise FaceeditError(f"{flag} {text!r}: expected a number") from None
    if not (value >= 0 if allow_zero else value > 0) or value == float("inf"):
        raise FaceeditError(f"{flag} {text!r}: must be {'>= 0' if allow_zero else 'positive'}")
    return value

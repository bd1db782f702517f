"""Shared pieces of the CLI: verb registration and argument parsers."""

from __future__ import annotations

import argparse
import math
import re
import sys
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
        deprecated: str | None = None,
    ) -> argparse.ArgumentParser:
        """A verb; with ``deprecated`` (its replacement, e.g. ``"faceedit edit codes.npy"``)
        a hidden one that prints the one-line notice and then runs as before."""
        sub = self._top if group is None else self._group(group)
        kwargs = {} if deprecated else {"help": help}  # no help: not listed in --help
        parser = sub.add_parser(
            name,
            description=(
                f"Deprecated: use {deprecated}. {description or help}"
                if deprecated
                else description or help
            ),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
            **kwargs,
        )
        if deprecated:
            old = f"{group} {name}" if group else name
            run = _noticed(run, old, deprecated)
        parser.set_defaults(run=run)
        return parser

    def order(self, names: list[str]) -> None:
        """List the top-level verbs in ``faceedit --help`` in this order (others after)."""
        rank = {n: i for i, n in enumerate(names)}
        actions = self._top._choices_actions
        actions.sort(key=lambda a: rank.get(a.dest, len(rank)))

    def _group(self, group: str) -> argparse._SubParsersAction:
        if group not in self._groups:
            parser = self._top.add_parser(
                group, help=_GROUP_HELP.get(group, group), description=_GROUP_HELP.get(group)
            )
            parser.set_defaults(run=lambda args, p=parser: p.print_help() or 2)
            self._groups[group] = parser.add_subparsers(title=f"{group} commands", metavar="WHAT")
        return self._groups[group]


def _noticed(
    run: Callable[[argparse.Namespace], int | None], old: str, new: str
) -> Callable[[argparse.Namespace], int | None]:
    def run_deprecated(args: argparse.Namespace) -> int | None:
        deprecation_notice(old, new)
        return run(args)

    return run_deprecated


_GROUP_HELP = {
    "train": "train a model (classifier, transformer, attgan, stylegan2, encoder, ...)",
    "eval": "evaluate a model (avatars, latent, attgan)",
    "data": "make datasets (avatars, latents)",
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


# --------------------------------------------------------------------------- the flag dialect
#
# Every verb spells its shared options through these helpers, so that each spelling lives
# once: ``-o/--output`` for what a verb writes, ``--device`` where a model runs, ``-q/--quiet``
# where progress is shown, ``--strengths`` as a list of numbers. Old spellings stay one
# release as hidden aliases that print a one-line notice on stderr.


def deprecation_notice(old: str, new: str) -> None:
    """The one-line notice for a deprecated spelling (option or verb), on stderr."""
    print(f"faceedit: {old} is deprecated, use {new}", file=sys.stderr)


class _NoticeOnAlias:
    """Mixin for argparse actions: an old spelling prints the notice, then acts as the new.

    The aliases are the same action object (so ``required`` and mutual exclusion see one
    option), reachable under extra option strings that are left out of ``option_strings``
    and therefore out of ``--help``, the usage line and error messages.
    """

    aliases: dict[str, str]

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        if option_string in getattr(self, "aliases", {}):
            deprecation_notice(option_string, self.aliases[option_string])
        super().__call__(parser, namespace, values, option_string)  # type: ignore[misc]


class _Store(_NoticeOnAlias, argparse._StoreAction):
    pass


class _StoreTrue(_NoticeOnAlias, argparse._StoreTrueAction):
    pass


class _Append(_NoticeOnAlias, argparse._AppendAction):
    pass


_ACTIONS = {"store": _Store, "store_true": _StoreTrue, "append": _Append}


def add_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *flags: str,
    deprecated: tuple[str, ...] = (),
    action: str = "store",
    **kwargs,
) -> argparse.Action:
    """``parser.add_argument(*flags, ...)`` plus hidden ``deprecated`` spellings of it."""
    act = parser.add_argument(*flags, action=_ACTIONS[action], **kwargs)
    act.aliases = {}  # type: ignore[attr-defined]
    # argument groups share their parser's table of option strings
    known = parser._option_string_actions
    for old in deprecated:
        if old in known:
            raise ValueError(f"{old}: already an option")
        known[old] = act
        act.aliases[old] = "/".join(flags)  # type: ignore[attr-defined]
    return act


def add_output(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    help: str,
    *,
    required: bool = True,
    default: str | None = None,
    metavar: str = "PATH",
    deprecated: tuple[str, ...] = ("--out",),
) -> argparse.Action:
    """``-o/--output`` (dest ``output``), the one spelling of "what this verb writes"."""
    return add_option(
        parser,
        "-o",
        "--output",
        deprecated=deprecated,
        dest="output",
        required=required,
        default=default,
        metavar=metavar,
        help=help,
    )


DEVICE_HELP = "auto (cuda when present, else cpu), cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_name(text: str) -> str:
    """An argparse ``type``: a device name faceedit understands, checked before any load."""
    if not _DEVICE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected {DEVICE_HELP}")
    return text.strip()


def add_device(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    default: str | None = "auto",
    help: str | None = None,
) -> argparse.Action:
    """``--device auto|cpu|cuda|cuda:N`` (dest ``device``); resolve it with
    :func:`faceedit.train.common.resolve_device`, the one resolver."""
    return parser.add_argument(
        "--device",
        type=device_name,
        default=default,
        metavar="DEVICE",
        help=help or DEVICE_HELP,
    )


def add_quiet(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    help: str = "no progress bars",
    deprecated: tuple[str, ...] = (),
) -> argparse.Action:
    """``-q/--quiet`` (dest ``quiet``), the one progress switch."""
    return add_option(
        parser, "-q", "--quiet", deprecated=deprecated, action="store_true", help=help
    )


def parse_strengths(text: str, flag: str = "--strengths") -> list[float]:
    """``"0.5,1,1.5"`` -> ``[0.5, 1.0, 1.5]``: what ``--strengths`` means on every verb."""
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise FaceeditError(f"{flag} {text!r}: not comma-separated numbers (e.g. 0.5,1)") from None
    if not values or any(math.isinf(v) or math.isnan(v) for v in values):
        raise FaceeditError(f"{flag} {text!r}: not comma-separated finite numbers (e.g. 0.5,1)")
    return values


def parse_range(text: str, flag: str) -> tuple[float, float]:
    """``"LO,HI"`` -> ``(LO, HI)``: what ``--strength-range`` means on every verb."""
    values = parse_strengths(text, flag)
    if len(values) != 2:
        raise FaceeditError(f"{flag} {text!r}: expected LO,HI, e.g. 0.5,1.5")
    return values[0], values[1]


#: the network that judges avatar edits by default: trained only to judge, never used by
#: a training command (faceedit/assets/models/avatar-judge/MODEL_CARD.md)
DEFAULT_JUDGE = "avatar-judge"


def add_judge(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--judge NAME`` (the avatar judge that reads edits; ``--oracle`` is its old
    spelling) and ``--allow-dependent-judge``."""
    add_option(
        parser,
        "--judge",
        deprecated=("--oracle",),
        default=DEFAULT_JUDGE,
        help="the network that reads the edits (name or path); it must not be in the "
        "model's lineage",
    )
    parser.add_argument(
        "--allow-dependent-judge",
        action="store_true",
        help="judge with a network that trained, labelled, hardened or selected the model "
        "(the output then says so)",
    )


def load_judge(args: argparse.Namespace, models: list[str]) -> tuple[object, list[str]]:
    """The judge of ``args.judge`` and, with ``--allow-dependent-judge``, what of each of
    ``models``' lineages it is (one line each; ``[]`` for an independent judge).

    Raises:
        FaceeditError: not an avatar judge, or a judge in a model's lineage without the
            flag (one line naming the role it played and the flag).
    """
    from faceedit.checkpoints.oracle import load_avatar_oracle
    from faceedit.lineage import check_judge_independent, describe

    judge = load_avatar_oracle(args.judge)
    notes = []
    for model in models:
        for e in check_judge_independent(model, args.judge, allow=args.allow_dependent_judge):
            notes.append(f"the judge {args.judge} is not independent of {model}: {describe(e)}")
    return judge, notes

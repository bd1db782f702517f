"""The ``faceedit`` command: thin verbs over the public API.

Each verb lives in its own module under ``faceedit.cli`` and exposes
``register(commands: Commands)``; the list of those modules is ``COMMAND_MODULES``.
Modules must not import torch at import time (``faceedit --help`` stays instant).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from faceedit import __version__
from faceedit.cli.common import Commands

COMMAND_MODULES: list[str] = [
    "faceedit.cli.attgan",
    "faceedit.cli.data",
    "faceedit.cli.encoder",
    "faceedit.cli.demo",
    "faceedit.cli.generate",
    "faceedit.cli.convert",
    "faceedit.cli.stylegan2",
    "faceedit.cli.eval_avatars",
    "faceedit.cli.eval_judge",
    "faceedit.cli.eval_styles",
    "faceedit.cli.directions",
    "faceedit.cli.latent",
    "faceedit.cli.invert",
    "faceedit.cli.models",
    "faceedit.cli.edit",
    "faceedit.cli.edit_codes",
    "faceedit.cli.edit_grids",
    "faceedit.cli.serve",
    "faceedit.cli.video",
]

# the order of ``faceedit --help``: try it, edit, models, then make your own
VERB_ORDER: list[str] = [
    "demo",
    "edit",
    "video",
    "serve",
    "generate",
    "invert",
    "models",
    "download",
    "convert",
    "data",
    "train",
    "eval",
    "stats",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceedit",
        description="Edit facial attributes of photos and videos with GANs (latent "
        "transformers on StyleGAN2, and AttGAN); train and evaluate the models.",
        epilog="Common options: -o/--output (what a command writes), --device "
        "auto|cpu|cuda|cuda:N (where a model runs), -q/--quiet (no progress bars). "
        "Run 'faceedit COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"faceedit {__version__}")
    commands = Commands(parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    commands.order(VERB_ORDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    code = _run(argv)
    if _is_torchrun_worker():
        _exit_now(code)
    return code


def _one_line_warnings() -> None:
    """faceedit's own warnings (a model on the other domain, ...) print as one line, like
    its errors, instead of Python's file:line: Category: text block."""
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("faceedit."):
            print(f"faceedit: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _run(argv: list[str] | None) -> int:
    from faceedit.errors import FaceeditError

    _one_line_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result = args.run(args)
    except FaceeditError as e:
        print(f"faceedit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("faceedit: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _is_torchrun_worker() -> bool:
    """True in a process that ``torchrun`` started as one of several workers."""
    return "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _exit_now(code: int) -> None:
    """End a torchrun worker without interpreter finalisation.

    Once a training command has returned, its outputs are written and closed and the
    process group is gone. What remains is Python's and C++'s teardown, where the gloo
    backend's native threads sometimes meet a destructor out of order and abort the
    process ("terminate called without an active exception"): torchrun then reports a
    finished run as failed. ``os._exit`` skips that teardown.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

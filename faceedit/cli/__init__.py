"""The ``faceedit`` command: thin verbs over the public API.

Each verb lives in its own module under ``faceedit.cli`` and exposes
``register(commands: Commands)``; the list of those modules is ``COMMAND_MODULES``.
Modules must not import torch at import time (``faceedit --help`` stays instant).
"""

from __future__ import annotations

import argparse
import importlib
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
    "faceedit.cli.directions",
    "faceedit.cli.latent",
    "faceedit.cli.invert",
    "faceedit.cli.models",
    "faceedit.cli.edit",
    "faceedit.cli.serve",
    "faceedit.cli.video",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceedit",
        description="Edit facial attributes of photos and videos with GANs.",
    )
    parser.add_argument("--version", action="version", version=f"faceedit {__version__}")
    commands = Commands(parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from faceedit.errors import FaceeditError

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

"""The resume flags every ``faceedit train`` verb shares.

Re-running a training command on its run directory resumes it
(:mod:`faceedit.train.checkpointing`); ``--restart`` starts over. The old switches
(``--resume``, ``--no-resume``) are accepted for one release with a one-line notice.
"""

from __future__ import annotations

import argparse
import os
import sys

RESTART_HELP = (
    "start over: delete the run found in the output directory (its checkpoint.pt, run.json "
    "and the files this command writes there, nothing else) and train from step 0. Without "
    "it, re-running the same command resumes, and a directory that holds a run with other "
    "settings is refused; a directory that holds anything but such a run is refused either way"
)


def add_restart_flag(parser: argparse.ArgumentParser) -> None:
    """``--restart`` (see :data:`RESTART_HELP`)."""
    parser.add_argument("--restart", action="store_true", help=RESTART_HELP)


def notice(text: str) -> None:
    """One line on stderr, from one process only under torchrun."""
    if os.environ.get("RANK", "0") == "0":
        print(f"faceedit: {text}", file=sys.stderr)


def deprecated_resume_notice() -> None:
    notice(
        "--resume is deprecated and does nothing: re-running a training command resumes "
        "it (--restart starts over)"
    )

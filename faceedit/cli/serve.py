"""``faceedit serve``: the web demo (Gradio, the ``web`` extra) on a local port."""

from __future__ import annotations

import argparse
import os

from faceedit.cli.common import Commands, add_device
from faceedit.editing.methods import METHODS
from faceedit.errors import FaceeditError


def register(commands: Commands) -> None:
    p = commands.add(
        "serve",
        "web demo: upload a photo, move a slider per attribute (needs faceedit[web])",
        run,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--max-upload-mb", type=float, default=10.0, help="largest photo accepted, in MB"
    )
    p.add_argument("--method", choices=list(METHODS), default="latent")
    p.add_argument(
        "--model",
        default=None,
        help="default model: a bundle directory or checkpoint (default: the bundled demo "
        "model, random weights until trained models ship)",
    )
    p.add_argument(
        "--steps", type=int, default=40, help="projection steps when a model has no encoder"
    )
    add_device(p)


def run(args: argparse.Namespace) -> int:
    if args.max_upload_mb <= 0:
        raise FaceeditError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if not 0 < args.port < 65536:
        raise FaceeditError(f"--port must be in 1..65535, got {args.port}")
    # a local tool: no usage analytics sent from the user's machine
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise FaceeditError("faceedit serve needs Gradio: pip install 'faceedit[web]'") from None
    from faceedit.app import serve
    from faceedit.train.common import resolve_device

    print(f"faceedit serve: http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    serve(
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        steps=args.steps,
        model=args.model,
        method=args.method,
        device=str(resolve_device(args.device)),
    )
    return 0

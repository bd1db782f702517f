"""``faceedit serve``: the web demo (Gradio, the ``web`` extra) on a local port."""

from __future__ import annotations

import argparse
import os

from faceedit.cli.common import Commands, add_device
from faceedit.cli.inversion import add_pti_arguments, check_pti_options, pti_options
from faceedit.editing.methods import METHODS
from faceedit.errors import FaceeditError


def register(commands: Commands) -> None:
    p = commands.add(
        "serve",
        "web page: an avatar studio on the shipped models, photo edits with the official "
        "ones (needs faceedit[web])",
        run,
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: local only); off loopback the model box takes only "
        "shipped and downloaded model names",
    )
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--max-upload-mb", type=float, default=10.0, help="largest photo accepted, in MB"
    )
    p.add_argument(
        "--allow-paths",
        action="store_true",
        help="off loopback, let the model box load any path on this machine too",
    )
    p.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        help="ask for this user and password (or set FACEEDIT_SERVE_AUTH=USER:PASSWORD, "
        "which keeps it out of the process list)",
    )
    p.add_argument(
        "--method", choices=list(METHODS), default="latent", help="the photo tab's method"
    )
    p.add_argument(
        "--model",
        default=None,
        help="the photo tab's model: a downloaded model's name, a bundle directory or "
        "checkpoint (none: the first official model in the cache)",
    )
    p.add_argument(
        "--steps", type=int, default=40, help="projection steps when a model has no encoder"
    )
    p.add_argument(
        "--invert",
        choices=("auto", "pti"),
        default="auto",
        help="how latent models invert a face: auto (the encoder) or pti (the generator "
        "tuned per image: slower, more faithful; see faceedit edit --help)",
    )
    add_pti_arguments(p)
    add_device(p)


def run(args: argparse.Namespace) -> int:
    if args.max_upload_mb <= 0:
        raise FaceeditError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if not 0 < args.port < 65536:
        raise FaceeditError(f"--port must be in 1..65535, got {args.port}")
    check_pti_options(args)
    # a local tool: no usage analytics sent from the user's machine
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise FaceeditError("faceedit serve needs Gradio: pip install 'faceedit[web]'") from None
    from faceedit.app import AccessPolicy, serve
    from faceedit.app.page import parse_auth
    from faceedit.train.common import resolve_device

    auth = parse_auth(args.auth or os.environ.get("FACEEDIT_SERVE_AUTH"))
    policy = AccessPolicy.for_host(args.host, args.allow_paths)
    print(f"faceedit serve: http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    print(f"faceedit serve: {policy.describe()}", flush=True)
    if policy.remote and auth is None:
        print("faceedit serve: no sign-in (--auth USER:PASSWORD to ask for one)", flush=True)
    serve(
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        steps=args.steps,
        model=args.model,
        method=args.method,
        device=str(resolve_device(args.device)),
        auth=auth,
        policy=policy,
        invert=args.invert,
        inversion=pti_options(args) if args.invert == "pti" else None,
    )
    return 0

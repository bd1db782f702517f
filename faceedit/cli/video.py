"""``faceedit video``: edit the face in every frame of a video (timing and audio kept).

A thin verb over :mod:`faceedit.editing.video`; model options are those of ``edit``.
"""

from __future__ import annotations

import argparse

from faceedit.cli.common import Commands, add_output, add_quiet


def register(commands: Commands) -> None:
    from faceedit.cli.edit import add_model_arguments

    p = commands.add(
        "video",
        "edit facial attributes in a video (frame rate, timestamps and audio kept; resumable)",
        run,
        description=(
            "Edit the face in every frame of a video: landmarks and crops smoothed over "
            "time, per-frame inversion from the previous frame's code, paste-back; the "
            "audio is copied. An interrupted run resumes from its frame cache "
            "(.OUTPUT.frames/ beside the output). "
            "Example: faceedit video in.mp4 --attr Smiling=1 --model BUNDLE_DIR -o out.mp4"
        ),
    )
    p.add_argument("input", help="input video (anything FFmpeg reads)")
    add_output(p, "output video (.mp4, .mov, .mkv, ...)")
    add_model_arguments(p)
    p.add_argument("--side-by-side", action="store_true", help="write original | edited frames")
    p.add_argument(
        "--smooth",
        type=float,
        default=2.0,
        metavar="SIGMA",
        help="temporal smoothing of landmarks and crops (Gaussian sigma in frames; 0: off)",
    )
    p.add_argument(
        "--face-index", type=int, default=None, help="which face, counting from the largest (0)"
    )
    p.add_argument("--crf", type=int, default=18, help="output quality (x264/VP9 CRF)")
    p.add_argument("--keep-cache", action="store_true", help="keep the frame cache after success")
    p.add_argument("--overwrite", action="store_true", help="allow the output to be the input")
    add_quiet(p, help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from faceedit.cli.edit import build_editor
    from faceedit.editing.video import VideoEditor, _av, _open_input, _pick_codec
    from faceedit.errors import FaceeditError
    from faceedit.fileio import check_not_inputs, check_output_path

    if args.face_index is not None and args.face_index < 0:
        raise FaceeditError(f"--face-index {args.face_index}: must be >= 0")
    output = check_output_path(args.output)
    check_not_inputs([output], [args.input], args.overwrite)
    _pick_codec(_av(), output.suffix.lower(), output)
    _open_input(Path(args.input)).close()  # before loading models: fail fast
    editor, edits = build_editor(args)
    video = VideoEditor(
        editor,
        sigma=args.smooth,
        side_by_side=args.side_by_side,
        face_index=args.face_index,
        crf=args.crf,
    )
    settings = {
        k: getattr(args, k)
        for k in ("model", "generator", "encoder", "transformers", "classifier", "crf")
    }
    try:
        report = video.run(
            args.input,
            output,
            edits,
            settings=settings,
            progress=not args.quiet,
            keep_cache=args.keep_cache,
        )
    except KeyboardInterrupt:
        import sys

        from faceedit.editing.video import cache_dir_for

        cache = cache_dir_for(output)
        done = len(list(cache.glob("*.png"))) if cache.is_dir() else 0
        print(
            f"faceedit: interrupted; {done} finished frame(s) kept in {cache}: run the same "
            "command again to resume",
            file=sys.stderr,
        )
        return 130
    print(report.summary())
    return 0

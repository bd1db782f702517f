"""What the evaluation judge and the ground-truth pixel metrics add to ``faceedit eval
avatars``.

Times :func:`faceedit.eval.avatars.evaluate_avatar_edits` on the same held-out avatars and
the same edits (the shipped model, inverted and edited as ``eval avatars`` does) two ways,
in turn, ``--repeats`` times each:

- **before**: read by the training-side oracle (``avatar-oracle``), no pixel metrics;
- **after**: read by the evaluation judge (``avatar-judge``) with the pixel metrics
  (region gain, PSNR outside the change region) on every edit.

It prints each run's seconds, the medians and their ratio (goal: at most 1.30). The CPU
may be shared with other jobs: the ratio of medians is what to quote.

    .venv/bin/python benchmarks/bench_eval_avatars.py [--n 500] [--method attgan]
"""

from __future__ import annotations

import argparse
import statistics
import time

GOAL = 1.30  # the judge and the pixel metrics may add at most 30%


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="held-out avatars")
    parser.add_argument("--method", default="attgan", choices=["attgan", "latent", "linear"])
    parser.add_argument("--model", default=None, help="default: the shipped model")
    parser.add_argument("--strength", type=float, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import faceedit
    from faceedit.editing.pipeline import build_editor
    from faceedit.eval.avatars import editor_functions, evaluate_avatar_edits, held_out_records

    model = args.model or ("avatar-attgan" if args.method == "attgan" else "avatar-latent")
    strength = args.strength or (2.0 if args.method == "attgan" else 1.0)
    editor = build_editor(args.method, model)
    judges = {"before": faceedit.load("avatar-oracle"), "after": faceedit.load("avatar-judge")}
    attrs = [a for a in editor.attributes if a in judges["after"].config.attr_names]
    records = held_out_records(args.n, seed=1)
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.repeats):
        for way, judge in judges.items():
            edit, reconstruct = editor_functions(editor)
            t = time.perf_counter()
            evaluate_avatar_edits(
                edit, attrs, judge, records, size=editor.crop_size, strength=strength,
                reconstruct=reconstruct, progress=False, pixel_metrics=way == "after",
            )  # fmt: skip
            times[way].append(time.perf_counter() - t)
            print(f"{way:6s} {times[way][-1]:7.2f} s")
    before, after = (statistics.median(times[k]) for k in ("before", "after"))
    print(
        f"{model} ({args.method}), {args.n} avatars x {len(attrs)} attributes: median "
        f"{before:.2f} s before (oracle, no pixel metrics), {after:.2f} s after (judge + "
        f"pixel metrics): ratio {after / before:.2f} (goal <= {GOAL:.2f})"
    )


if __name__ == "__main__":
    main()

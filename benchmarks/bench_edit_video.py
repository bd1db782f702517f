"""Where the time of photo and video editing goes, on the CPU.

Per frame of a 480 x 480 video made from grace_hopper.jpg: decoding, face detection
(YuNet), alignment (warp to the crop), the model (a release-size 128 px AttGAN, random
weights), paste-back, and the whole ``faceedit video`` run (two decoding passes, PNG
frame cache, H.264 encoding) in frames per second. The model share shows how much of a
run is pipeline overhead. The CPU may be shared: read the figures as indicative.

    python benchmarks/bench_edit_video.py [--frames 24] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ms(fn, repeats: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import av

    from faceedit.editing.pipeline import FaceEditor, load_attgan
    from faceedit.editing.video import VideoEditor
    from faceedit.faces import align_from_face
    from faceedit.faces.detect import default_detector
    from faceedit.nets.attgan import AttGAN, AttGANConfig
    from tests.helpers.tiny_edit import make_video

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        AttGAN(AttGANConfig()).eval().save_pretrained(root / "attgan")
        src = root / "in.mp4"
        make_video(src, n_frames=args.frames, size=480)
        with av.open(str(src)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        rgb = frames[0]
        detector = default_detector()
        face = detector.detect(rgb)[0]
        aligned = align_from_face(rgb, face, size=128)
        editor = FaceEditor("attgan", attgan=load_attgan(root / "attgan"))
        edits = {"Eyeglasses": 1.0}
        edited = editor.edit_crop(aligned.crop, edits).edited_crop

        def decode():
            with av.open(str(src)) as c:
                for f in c.decode(video=0):
                    f.to_ndarray(format="rgb24")

        parts = {
            "decode": _ms(decode, 2) / len(frames),
            "detect": _ms(lambda: detector.detect(rgb), 5),
            "align": _ms(lambda: align_from_face(rgb, face, size=128), 5),
            "model": _ms(lambda: editor.edit_crop(aligned.crop, edits), 5),
            "paste": _ms(lambda: aligned.paste_back(edited), 5),
        }
        t = time.perf_counter()
        VideoEditor(editor).run(src, root / "out.mp4", edits, progress=False)
        total = (time.perf_counter() - t) * 1000 / len(frames)

    print(f"480 x 480 frames, AttGAN 128 px, {args.threads} thread(s), {len(frames)} frames")
    for name, ms in parts.items():
        print(f"  {name:<8} {ms:8.1f} ms/frame")
    print(f"  {'video':<8} {total:8.1f} ms/frame ({1000 / total:.1f} frames/s) end to end")
    print(f"  model share of the video run: {parts['model'] / total:.0%}")
    print(
        f"  overhead beyond the parts above: {total - sum(parts.values()):.1f} ms/frame "
        "(second decode, PNG cache, encoding)"
    )


if __name__ == "__main__":
    main()

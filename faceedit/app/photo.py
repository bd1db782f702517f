"""Which photo models the page offers: the official releases already in the cache, and
the commands that fetch them when none is.

An official model is a catalogue entry of origin ``download`` that is on this machine and
edits photos by itself: a bundle directory (``faceedit download lt-ffhq-e4e`` assembles
one: the encoder with its FFHQ generator, the released transformers and classifier) or an
AttGAN release folder (taken in with ``faceedit download attgan-384-hq --from FOLDER``).
Single parts (a generator alone, an encoder) are not offered: they edit nothing.
"""

from __future__ import annotations

from pathlib import Path

#: the commands that fetch the official photo models, per method
DOWNLOAD_COMMANDS = (
    ("latent transformers (and the linear baseline)", "faceedit download lt-ffhq-e4e"),
    ("the same with the pSp encoder", "faceedit download lt-ffhq-psp"),
    ("AttGAN, from the release folder you downloaded", "faceedit download attgan-384-hq --from FOLDER"),
)  # fmt: skip


#: the methods that run a bundle of each "method"; a bundle with "directions" runs the
#: linear baseline too; an AttGAN release folder runs AttGAN
BUNDLE_METHODS = {"latent": ("latent",), "attgan": ("attgan",)}
WITH_DIRECTIONS = ("linear",)
RELEASE_METHODS = ("attgan",)


def _is_attgan_release(path: Path) -> bool:
    if not path.is_dir():
        return False
    return any(path.glob("weights.*.pth")) or any(path.glob("checkpoint/weights.*.pth"))


def official_photo_models() -> dict[str, tuple[str, ...]]:
    """``{name: methods it runs}`` of the official photo models in the cache."""
    from faceedit.hub import HubError, catalogue, is_bundle, read_bundle

    out: dict[str, tuple[str, ...]] = {}
    for entry in catalogue().values():
        if entry.origin != "download" or entry.path is None or not entry.path.exists():
            continue
        path = entry.path
        if is_bundle(path):
            try:
                spec = read_bundle(path)
            except HubError:
                continue
            if spec.get("domain", "ffhq") == "avatar":
                continue
            runs = BUNDLE_METHODS.get(spec.get("method", "latent"), ())
            if runs and spec.get("directions"):
                runs += WITH_DIRECTIONS
            if runs:
                out[entry.name] = runs
        elif _is_attgan_release(path):
            out[entry.name] = RELEASE_METHODS
    return out


def default_model(method: str, models: dict[str, tuple[str, ...]]) -> str:
    """The first official model that runs ``method`` (``""`` when none)."""
    return next((name for name, methods in models.items() if method in methods), "")


def downloads_panel() -> str:
    """The Markdown panel shown when no official photo model is on this machine."""
    lines = [
        "**No photo model on this machine yet.** faceedit's shipped models are trained on "
        "avatars (the *Avatar studio* tab); the official photo models are fetched once:",
        "",
        "```",
        *(f"{cmd:<48} # {what}" for what, cmd in DOWNLOAD_COMMANDS),
        "```",
        "",
        "Then reload this page (`faceedit models` lists what is on this machine).",
    ]
    return "\n".join(lines)

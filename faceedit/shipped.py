"""Models that ship inside the faceedit package (trained by faceedit's own commands; each
directory holds metrics.json, a MODEL_CARD.md and either one model in the own format
(config.json + model.safetensors) or a bundle of several (bundle.json naming its parts,
see :mod:`faceedit.editing.pipeline`))."""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).parent / "assets" / "models"
# a directory is a shipped model when it holds one of these
MARKERS = ("config.json", "bundle.json")


def _is_model(path: Path) -> bool:
    return any((path / m).is_file() for m in MARKERS)


def shipped_models() -> list[str]:
    """Names of the models in the package."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if _is_model(p))


def shipped_path(name: str) -> Path | None:
    """The directory of shipped model ``name``, or None."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = SHIPPED_DIR / name
    return path if _is_model(path) else None

"""Models that ship inside the faceedit package (trained by faceedit's own commands; each
directory holds config.json, model.safetensors, metrics.json and a MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).parent / "assets" / "models"


def shipped_models() -> list[str]:
    """Names of the models in the package."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file())


def shipped_path(name: str) -> Path | None:
    """The directory of shipped model ``name``, or None."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = SHIPPED_DIR / name
    return path if (path / "config.json").is_file() else None

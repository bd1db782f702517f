"""One explicit training loop per model, over small shared helpers."""

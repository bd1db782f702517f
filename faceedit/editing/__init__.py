"""Inference pipelines: LatentEditor, AttGANEditor, baselines, inversion, video."""

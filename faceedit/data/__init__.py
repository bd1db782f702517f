"""Datasets (CelebA, CelebA-HQ, custom folders, latent codes, avatars) and image I/O."""

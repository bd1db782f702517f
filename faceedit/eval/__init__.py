"""Metrics (target change, preservation, identity, PSNR/SSIM) and report plots."""

"""Pivotal tuning's default options, without torch (the command line reads them while
it builds its parsers; :mod:`faceedit.editing.pti` does the tuning).

Measured on held-out avatars of seed 5 with the shipped ``avatar-latent`` bundle
(``benchmarks/bench_pti.py --part avatar --threads 1``): with the multiscale pixel loss,
150 steps at lr 1e-3 took the encoder's 20.1 dB to 28.0 dB (6 avatars) in 4.6 s CPU per
avatar. On 3 of them: avatar-oracle's features as the perceptual loss (weight 1 / 0.1 /
0.03) reached 24.1 / 26.2 / 27.7 dB against 28.2 dB for pixels; the locality term
(weight 0.1, radius 0.3) cost 0.5 dB of reconstruction and drew an edited pivot (Smiling
= 1) 2.3 dB closer to the original generator's drawing of it (23.4 vs 21.1 dB).
"""

from __future__ import annotations

DEFAULT_STEPS = 150
DEFAULT_LR = 1e-3
DEFAULT_LOCALITY = 0.1
DEFAULT_RADIUS = 0.3
DEFAULT_PERCEPTUAL = "auto"
DEFAULT_PERCEPTUAL_WEIGHT = 1.0
#: ``perceptual="auto"``: what each domain tunes with (pixels: see the module docstring;
#: an avatar oracle such as ``avatar-oracle`` stays an option)
AUTO_PERCEPTUAL = {"avatar": "pixels", "ffhq": "pixels"}
PIXELS = ("pixels", "none")

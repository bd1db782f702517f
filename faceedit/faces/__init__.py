"""Face detection, 5-point landmarks, FFHQ-style alignment, inverse warp and paste-back."""

"""Trainable ``nn.Module``s, one file per architecture family.

``nets`` imports nothing else of faceedit: configs live beside their networks as frozen
dataclasses, and the own checkpoint format (config.json + model.safetensors) is
implemented by :class:`faceedit.nets.base.ConfigModule`.
"""

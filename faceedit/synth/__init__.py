"""Datasets built from models: generator samples labelled by an attribute reader, and the
latent transformers' own edits labelled the same way (the files ``train`` reads).

This package sits above ``editing`` and ``eval`` by nature: it renders with generators
and editors and reads the pictures with judges, so nothing below it may import it.
"""

"""Image-representation baselines of Appendix A / Table 2: Autoencoder, PCA, ResNet-18, Tile2Vec,
READ and PG-SimCLR.

Each module exposes ``learn(prep, b, seed, device, progress) -> Representation``
(``training/registry.py``); the run then fits the shared MLP head on the features. Shared parts
live in :mod:`.common`.
"""

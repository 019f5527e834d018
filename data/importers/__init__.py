"""Importers of features made elsewhere: public releases (one module per layout) and per-video ``.npy``
files."""

"""Data sets and their loaders (Hamlet, IMDb, the UEA/UCR archive): numpy only, never torch.

Used by training, verification, optimisation and benchmarks alike. Files are found in the
data directory (``download.data_dir``) and fetched from their original source when missing.
"""

"""Working with exported files: verify, optimize, bench and evaluate them. Torch-free.

Imports the runtime and the data sets, never torch, ``train`` or ``export``: where PyTorch
joins a comparison (a checkpoint given to ``verify`` or ``bench``), the command line builds
its engine with ``rnnedge.export.torch_engines`` and hands it in as one more engine.
"""

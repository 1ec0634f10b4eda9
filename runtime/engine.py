"""The interface of an engine: what ``GraphModel`` and the task layers may read of one.

Every engine (``engines.py``: ort, numba; ``fast_chain.py``, ``fast_seq.py``: the fused
ones) derives from ``Engine`` and overrides what it brings; nothing is probed for.
"""


class Engine:
    """The interface every engine declares (``run`` is its own), with the defaults of an
    engine that brings nothing more: ``GraphModel`` and the task layers read these, they do
    not probe for them."""

    name = "engine"
    # what the task layers need not check again: ids outside an embedding, lengths outside
    # the sequence (the fast engines refuse both in their kernels, with their own messages)
    checks_tokens = checks_lengths = False
    all_finite = None  # a faster finiteness check of the engine's own (the fast ones: numba)

    def checked_run(self, signature):
        """A ``run_checked(feeds)`` that checks the common case's feeds as
        ``GraphModel.check`` would, in one pass, and returns None for anything else; or None
        when the engine has none."""
        return None

    def run(self, feeds):
        raise NotImplementedError

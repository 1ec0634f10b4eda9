"""The fast engine of streaming recurrent graphs: a layer chain and a linear head, fused.

``FastChainEngine(onnx_model, quantize=None | "int8")`` runs what ``chain_graph.read_chain``
finds (a chain of forward LSTM, GRU or RNN layers over frames or token ids, batch- or
time-major, a linear head, optional states): ``run(feeds) -> {output name: array}`` is one
numba call (ops/fused_stack.py, the kernel every fused engine runs), fp32 or int8; ``run_checked`` takes the common streamed call in one
pass (``feeds.py``). rnnedge's own char model is such a chain (token ids, every-step head,
h0/c0 in and hn/cn out). A graph it cannot read raises ``UnsupportedError`` (the caller then
falls back to the interpreter). Not thread-safe (one set of work buffers).
"""

import numpy as np

from .chain_graph import read_chain
from .engine import Engine
from .errors import InputError, UnsupportedError
from .feeds import (FLOAT32, INT64, all_finite, is_array,
                    split_sequence, takes_declared)
from .fast_seq import FastSeqEngine, Seq
from .ops import fused_stack
from .ops.fused_node import CELLS

NO_STATE = fused_stack.NO_STATE  # c of a GRU or RNN: never read by the kernels
NO_SUM = fused_stack.NO_POOL  # the pooled sums (and counts) this engine has not
NO_PROBS = fused_stack.NO_PROBS  # a chain's head gives logits alone


class FastChainEngine(Engine):
    """Fused kernels over a chain and its head, ``run`` as ``OrtEngine.run`` (twin: numpy's)."""

    all_finite = staticmethod(all_finite)  # for ``GraphModel.check``: compiled, one call
    checks_tokens, checks_lengths = True, False  # ids: a typed error from the kernel

    def __init__(self, model, quantize=None, twin=False, chain=None, threads=1):
        if quantize not in (None, "int8"):
            raise InputError(f"quantize must be None or 'int8', not {quantize!r}")
        self.chain = c = chain or read_chain(model)  # ``chain``: already read
        if c.directions != 1 or c.pool:
            raise UnsupportedError("fast chain engine: bidirectional layers or a pooled head "
                                   "run on FastPooledEngine")
        self.L, self.H = len(c.layers), c.layers[0][1].shape[2]
        self.F = 0 if c.embedding is not None else c.layers[0][0].shape[2]  # 0: token ids
        # frames pass through unnormalised: (x - 0) / 1 is x, bit for bit
        packed = fused_stack.pack(CELLS[c.op], c.activation, c.lbr, c.layers, c.embedding,
                                  np.zeros(self.F), np.ones(self.F), c.fc, c.fc_bias)
        self.name = "fast-int8" if quantize else "fast"
        # one step (the streamed call) runs time-major, longer sequences layer after layer
        self.stream = fused_stack.stream_numpy if twin else fused_stack.stream
        # every case runs its whole time: lengths above T (``clamp``) mean T
        head = fused_stack.EVERY if c.every else fused_stack.FINAL
        self.arguments = fused_stack.arguments(packed, head, quantize == "int8", clamp=True,
                                               int8_table=False)
        # the batch rows spread over ``threads`` when a call has several (one: a device's case)
        self.calls = fused_stack.Calls(packed, threads, twin)
        self.whole = {}  # batch size -> lengths that mean "every step"
        self.outputs = [o.name for o in model.graph.output]
        self.no_tokens = np.zeros((0, 0), np.int64)
        # what ``run_checked`` reads, worked out once (per streamed call every lookup counts)
        self.ids, self.time_major, self.lstm = c.embedding is not None, c.time_major, c.op == "LSTM"
        self.sequence = c.sequence
        self.sequence_dtype, self.sequence_rank = (INT64, 2) if self.ids else (FLOAT32, 3)
        self.h_name, self.c_name = c.states["h"], c.states["c"] if self.lstm else None
        self.no_frames = np.zeros((1, 1, 0), np.float32)  # X of ids: (B, T) is the tokens'
        self.every, self.y_time_major, self.C = c.every, c.y_time_major, c.fc.shape[0]
        self.named = _namer(self.outputs, [c.outputs[name] for name in self.outputs])

    def run(self, feeds):
        """The graph's outputs: head y (B, T, C) or (B, C), final states (L, B, H); new arrays."""
        c = self.chain
        if c.sequence not in feeds:
            raise InputError(f"feeds lack {c.sequence}")
        X, tokens = self._sequence(np.asarray(feeds[c.sequence]))
        B, T = X.shape[:2]
        h = _state(feeds, c.states["h"], (self.L, B, self.H))
        cn = _state(feeds, c.states["c"], h.shape) if c.op == "LSTM" else NO_STATE
        out = self._outputs(X, tokens, h, cn)
        if out is None:  # what ``GraphModel.check`` refuses first, for a caller without it
            raise InputError(f"{c.sequence} holds NaN or infinity")
        return out

    def _outputs(self, X, tokens, h, cn, h0=NO_STATE, c0=NO_STATE):
        """The kernel on checked inputs and state copies it updates in place; given states
        h0, c0 are copied into them there, checked with the frames (None: not finite)."""
        B, T = tokens.shape if self.ids else X.shape[:2]
        y = np.empty((B, T, self.C) if self.every else (B, 1, self.C), FLOAT32)
        if T == 1 and (B == 1 or self.calls.threads == 1):
            bad = self.stream(X, tokens, h0, c0, h, cn, y, *self.arguments, *self.calls.work)
        else:
            lengths = self.whole.get(B)
            if lengths is None:
                lengths = self.whole[B] = np.full(B, np.iinfo(np.int64).max, np.int64)
            bad = self.calls.run(B, T, X, tokens, lengths, h0, c0, h, cn, NO_SUM, NO_SUM, y,
                                 NO_PROBS, *self.arguments)
        if bad == fused_stack.NOT_FINITE:
            return None
        bad -= B
        if bad >= 0:  # the kernel's code of a token: B + its flat index
            raise InputError(f"token id {tokens.flat[bad]} at "
                             f"{tuple(int(i) for i in np.unravel_index(bad, tokens.shape))} "
                             f"is outside the vocabulary [0, {self.chain.embedding.shape[0]})")
        if self.y_time_major:  # an every-step head whose output is (T, B, C)
            y = np.ascontiguousarray(y.swapaxes(0, 1))
        return self.named(y if self.every else y[:, 0], h, cn)

    def checked_run(self, signature):
        """``run_checked`` when the graph declares the inputs it checks, else None: for
        ``GraphModel``, whose ``check`` it then skips on the common case."""
        c = self.chain
        takes = {c.sequence: ("int64", 2, set()) if c.embedding is not None else
                 ("float32", 3, {(2, self.F)})}
        takes.update({name: ("float32", 3, {(0, self.L), (2, self.H)})
                      for name in c.states.values() if name is not None})
        return self.run_checked if takes_declared(signature, takes) else None

    def run_checked(self, feeds):
        """``run`` of the common case (the sequence in the graph's dtype, finite float32 states
        of the model's shapes, all C-contiguous) with every check of ``GraphModel.check``, in
        one pass (``feeds.py``); None for anything else (the long path says what is wrong).
        The streamed call: a few attribute reads and one compiled call, which copies and checks
        the states and frames before it runs the stack."""
        seq = feeds.get(self.sequence)
        if self.time_major and type(seq) is np.ndarray and seq.ndim > 1:
            seq = np.ascontiguousarray(seq.swapaxes(0, 1))
        if not (type(seq) is np.ndarray and seq.dtype == self.sequence_dtype
                and seq.ndim == self.sequence_rank and seq.size and seq.flags.c_contiguous
                and (self.ids or seq.shape[2] == self.F)):
            return None
        X, tokens = (self.no_frames, seq) if self.ids else (seq, self.no_tokens)
        shape = (self.L, seq.shape[0], self.H)
        h, c = feeds.get(self.h_name), feeds.get(self.c_name)
        hn = np.empty(shape, FLOAT32) if self.h_name else np.zeros(shape, FLOAT32)
        cn = (NO_STATE if not self.lstm else np.empty(shape, FLOAT32) if self.c_name
              else np.zeros(shape, FLOAT32))
        # read-only states take the long path: the kernel is compiled for writable arrays
        # (a read-only one would compile it again, seconds, for a copy the long path makes)
        if not (is_array(h, FLOAT32, shape) and h.flags.writeable if self.h_name else True):
            return None
        if not (is_array(c, FLOAT32, shape) and c.flags.writeable if self.c_name else True):
            return None
        return self._outputs(X, tokens, hn, cn, h if self.h_name else NO_STATE,
                             c if self.c_name else NO_STATE)

    def _sequence(self, seq):
        return split_sequence(seq, self.chain.embedding is not None, self.F,
                              self.chain.sequence, self.no_tokens, self.chain.time_major)


def check_pooled(chain):
    """``UnsupportedError`` unless the pooled engine runs this (bidirectional or pooled) chain:
    whole cases from zero states to the pooled head alone."""
    if any(chain.states.values()) or set(chain.outputs.values()) != {"y"}:
        raise UnsupportedError("fast pooled engine: it runs whole cases from zero states "
                               "to the pooled head alone, not state inputs or outputs")


def _namer(names, keys):
    """``named(y, h, c) -> {output name: array}`` for the graph's outputs, each "y", "h" or
    "c" (``Chain.outputs``): one dict display per streamed call, no loop (0.1 µs, not 0.4)."""
    at = ["yhc".index(k) for k in keys]
    if len(names) == 1:
        (a,), (i,) = names, at
        return lambda *v: {a: v[i]}
    if len(names) == 2:
        (a, b), (i, j) = names, at
        return lambda *v: {a: v[i], b: v[j]}
    (a, b, c), (i, j, k) = names, at
    return lambda *v: {a: v[i], b: v[j], c: v[k]}


def _state(feeds, name, shape):
    """A float32 copy of state input ``name`` (the kernel updates it in place), or zeros."""
    if name is None:
        return np.zeros(shape, np.float32)
    state = np.array(feeds[name], np.float32, order="C") if name in feeds else None
    if state is None or state.shape != shape:
        raise InputError(f"state {name} is {'missing' if state is None else state.shape}, "
                         f"expected {shape} (layers, batch, hidden)")
    return state


class FastPooledEngine(FastSeqEngine):
    """Users' whole-sequence classifiers the chain engine does not run, bidirectional layers
    or a head on the top outputs' mean or max over time (``chain_graph.read_chain``), on the
    sequence engine; every case runs its whole time (the graph
    has no lengths input)."""

    def __init__(self, model, quantize=None, twin=False, chain=None, threads=1):
        c = chain or read_chain(model)
        if c.directions == 1 and not c.pool:
            raise UnsupportedError("fast pooled engine: a forward chain with a linear head "
                                   "runs on FastChainEngine")
        check_pooled(c)
        F = None if c.embedding is not None else c.layers[0][0].shape[2]
        seq = Seq(c.sequence, False, c.embedding, None if F is None else np.zeros(F, np.float32),
                  None if F is None else np.ones(F, np.float32), c.op, c.activation, c.lbr,
                  c.directions, c.layers, c.pool, {},
                  {name: "logit" for name in c.outputs}, False, False, c.fc, c.fc_bias, "",
                  c.time_major)
        super().__init__(model, quantize, twin, seq, threads)

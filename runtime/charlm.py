"""The character language model at run time: streaming state and sampling.

``model.run(tokens, state)`` is one call of the graph; ``model.stream()`` gives an
independent stream that carries its own state (``step``, ``reset``);
``model.generate`` primes a stream with a prompt and samples with temperature and
top-k, as the chapter does (top_k=5), reproducibly for a given seed.
"""

import math

import numpy as np

from .errors import InputError, ModelFileError
from .checks import as_float32


PROMPT_CHUNK = 4096  # prompt characters per graph call


class CharModel:
    kind = "charlm"

    def __init__(self, onnx_model, meta, core, path=None):
        """``core``: the ``GraphModel`` this task layer speaks to (feeds checked there)."""
        self.onnx_model, self.meta, self.core, self.path = onnx_model, meta, core, path
        self.engine = core.engine
        self.config = meta.config
        self.vocab = list(meta.vocab)
        self.index = {ch: i for i, ch in enumerate(self.vocab)}
        # each character as the (1, 1) ids of one streamed step, made once: encoding one
        # character the general way costs the streamed call ~1.5 µs (engines only read them)
        self.one = {ch: np.full((1, 1), i, np.int64) for ch, i in self.index.items()}
        self.state_names = ["h0", "c0"] if self.config["cell"] == "lstm" else ["h0"]
        # the fast engines refuse ids outside the vocabulary in their kernels: not checked twice
        self.engine_checks_tokens = self.engine.checks_tokens
        self.check_graph()  # the graph's states are the config's shape, so the engine's
        # one-pass check of the common case's feeds (``GraphModel.run_checked``) is this layer's
        self.run_checked = core.run_checked

    def check_graph(self):
        """The metadata must describe the graph: vocabulary size and state names."""
        outputs = {o["name"]: o["shape"] for o in self.core.signature["outputs"]}
        inputs = {i["name"] for i in self.core.signature["inputs"]}
        width = (outputs.get("logits") or [None])[-1]
        if isinstance(width, int) and width > 0 and width != len(self.vocab):
            raise ModelFileError(f"{self.path}: its metadata vocabulary has {len(self.vocab)} "
                                 f"characters but the graph's logits have {width}; the file was "
                                 f"altered after export: export it again")
        state = next((i["shape"] for i in self.core.signature["inputs"] if i["name"] == "h0"), [])
        for key, axis in (("num_layers", 0), ("hidden_size", -1)):
            size = state[axis] if len(state) == 3 else None
            if isinstance(size, int) and size != self.config.get(key):
                raise ModelFileError(f"{self.path}: its metadata config says {key} "
                                     f"{self.config.get(key)!r} but the graph's states have "
                                     f"{size}; the file was altered after export: export it again")
        if "c0" in inputs and self.config.get("cell") != "lstm":
            raise ModelFileError(f"{self.path}: its metadata config says cell "
                                 f"{self.config.get('cell')!r} but the graph takes an LSTM's c0; "
                                 f"the file was altered after export: export it again")
        missing = [n for n in ["tokens", *self.state_names] if n not in inputs]
        if missing:
            raise ModelFileError(f"{self.path}: metadata says a {self.config.get('cell')} model, but "
                                 f"the graph lacks inputs {', '.join(missing)}: export it again")

    # -- text <-> ids -------------------------------------------------------------
    def encode(self, text):
        if not isinstance(text, str) or text == "":
            raise InputError("the prompt is empty; give at least one character")
        unknown = sorted({ch for ch in text if ch not in self.index})
        if unknown:
            raise InputError(f"characters not in the model's vocabulary: "
                             f"{', '.join(repr(c) for c in unknown)}")
        return np.fromiter((self.index[ch] for ch in text), dtype=np.int64, count=len(text))

    def decode(self, ids):
        return "".join(self.vocab[int(i)] for i in ids)

    # -- the graph ----------------------------------------------------------------
    def zero_state(self, batch=1):
        shape = (self.config["num_layers"], batch, self.config["hidden_size"])
        return {name: np.zeros(shape, np.float32) for name in self.state_names}

    def run(self, tokens, state=None):
        """tokens (B, T) int64 -> logits (B, T, V) float32 and the next state."""
        out = None
        if self.run_checked is not None and type(state) is dict \
                and len(state) == len(self.state_names):
            out = self.run_checked({"tokens": tokens, **state})  # None: not the common case
        if out is None:
            out = self.core.run(self.feeds(tokens, state))
        if out["hn"].shape[0] != self.config["num_layers"]:  # ort reads no proto at load
            raise ModelFileError(f"{self.path}: its metadata config says num_layers "
                                 f"{self.config['num_layers']} but the graph returns "
                                 f"{out['hn'].shape[0]}; the file was altered after export: "
                                 f"export it again")
        next_state = {"h0": out["hn"]}
        if "c0" in self.state_names:
            next_state["c0"] = out["cn"]
        return out["logits"], next_state

    def feeds(self, tokens, state=None):
        """The graph's feeds of ``run``'s arguments; typed errors for what it cannot take."""
        tokens = tokens if type(tokens) is np.ndarray else np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] == 0 or tokens.dtype.kind not in "iu":
            raise InputError(f"tokens must be integer ids of shape (batch, time >= 1), "
                             f"not {tokens.dtype} {tokens.shape}")
        if not self.engine_checks_tokens and (tokens.min() < 0 or tokens.max() >= len(self.vocab)):
            raise InputError(f"token ids must lie in [0, {len(self.vocab)}), got "
                             f"[{tokens.min()}, {tokens.max()}]")
        batch = tokens.shape[0]
        state = self.zero_state(batch) if state is None else state
        shape = (self.config["num_layers"], batch, self.config["hidden_size"])
        feeds = {"tokens": tokens.astype(np.int64, copy=False)}
        for name in self.state_names:
            if name not in state:
                raise InputError(f"state lacks {name}; this {self.config['cell']} model needs "
                                 f"{', '.join(self.state_names)}")
            value = state[name]  # a carried state needs no conversion (GraphModel checks the rest)
            feeds[name] = (value if type(value) is np.ndarray and value.dtype == np.float32
                           and value.shape == shape else as_float32(name, value, shape))
        return feeds

    def stream(self):
        return Stream(self)

    def generate(self, prompt, length=500, temperature=1.0, top_k=5, seed=0):
        """The prompt followed by ``length`` sampled characters."""
        return prompt + "".join(self.sample_chars(prompt, length, temperature, top_k, seed))

    def sample_chars(self, prompt, length=500, temperature=1.0, top_k=5, seed=0, chunk=PROMPT_CHUNK):
        """Yield ``length`` characters sampled after ``prompt``, one at a time (for streaming).

        The prompt is fed ``chunk`` characters per call, so memory stays flat however long it
        is; the state carries across chunks, so the result equals feeding it whole.
        """
        check_sampling(length, temperature, top_k)
        self.encode(prompt)  # every character checked before anything is sampled or printed
        return self._sampled(prompt, length, temperature, top_k, seed, chunk)

    def _sampled(self, prompt, length, temperature, top_k, seed, chunk):
        rng = np.random.default_rng(seed)
        stream = self.stream()
        for start in range(0, len(prompt), chunk):
            logits = stream.step(prompt[start:start + chunk])[-1]
        for _ in range(length):
            nxt = sample(logits, rng, temperature, top_k)
            yield self.vocab[nxt]
            logits = stream.step_ids([nxt])[-1]


def check_sampling(length, temperature, top_k):
    """Typed errors for sampling settings that would fail later or sample noise silently."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise InputError(f"length must be an integer >= 0, not {length!r}")
    if not isinstance(temperature, (int, float, np.floating)) or not math.isfinite(temperature) \
            or temperature <= 0:
        raise InputError(f"temperature must be a finite number > 0, not {temperature!r} (inf would "
                         "sample uniform noise, nan nothing)")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 1):
        raise InputError(f"top_k must be an integer >= 1 or None, not {top_k!r}")


class Stream:
    """One independent stream of characters through the model, batch 1."""

    def __init__(self, model):
        self.model = model
        self.reset()

    def reset(self):
        self.state = self.model.zero_state(1)

    def step_ids(self, ids):
        logits, self.state = self.model.run(np.asarray(ids, np.int64)[None, :], self.state)
        return logits[0]  # (T, V)

    def step(self, text):
        """Feed ``text``; return the logits after each of its characters, (T, V)."""
        ids = self.model.one.get(text) if type(text) is str else None
        if ids is None:  # not one character of the vocabulary: the general way and its checks
            return self.step_ids(self.model.encode(text))
        logits, self.state = self.model.run(ids, self.state)
        return logits[0]


def sample(logits, rng, temperature=1.0, top_k=None):
    """Draw one id from softmax(logits / temperature) restricted to the top k."""
    z = np.asarray(logits, np.float64) / temperature
    if top_k is not None and top_k < z.size:
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(p.size, p=p))

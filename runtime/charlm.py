"""The character language model at run time: streaming state and sampling.

``model.run(tokens, state)`` is one call of the graph; ``model.stream()`` gives an
independent stream that carries its own state (``step``, ``reset``);
``model.generate`` primes a stream with a prompt and samples with temperature and
top-k, as the chapter does (top_k=5), reproducibly for a given seed.
"""

import numpy as np

from .errors import InputError
from .model import as_float32


class CharModel:
    task = "charlm"

    def __init__(self, onnx_model, meta, engine, path=None):
        self.onnx_model, self.meta, self.engine, self.path = onnx_model, meta, engine, path
        self.config = meta.config
        self.vocab = list(meta.vocab)
        self.index = {ch: i for i, ch in enumerate(self.vocab)}
        self.state_names = ["h0", "c0"] if self.config["cell"] == "lstm" else ["h0"]

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
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] == 0 or not np.issubdtype(tokens.dtype, np.integer):
            raise InputError(f"tokens must be integer ids of shape (batch, time >= 1), "
                             f"not {tokens.dtype} {tokens.shape}")
        if tokens.min() < 0 or tokens.max() >= len(self.vocab):
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
            feeds[name] = as_float32(name, state[name], shape)
        out = self.engine.run(feeds)
        next_state = {"h0": out["hn"]}
        if "c0" in self.state_names:
            next_state["c0"] = out["cn"]
        return out["logits"], next_state

    def stream(self):
        return Stream(self)

    def generate(self, prompt, length=500, temperature=1.0, top_k=5, seed=0):
        """The prompt followed by ``length`` sampled characters."""
        if length < 0:
            raise InputError(f"length must be >= 0, not {length}")
        if temperature <= 0:
            raise InputError(f"temperature must be > 0, not {temperature}")
        if top_k is not None and top_k < 1:
            raise InputError(f"top_k must be >= 1 or None, not {top_k}")
        rng = np.random.default_rng(seed)
        stream = self.stream()
        logits = stream.step(prompt)[-1]
        out = []
        for _ in range(length):
            nxt = sample(logits, rng, temperature, top_k)
            out.append(self.vocab[nxt])
            logits = stream.step_ids([nxt])[-1]
        return prompt + "".join(out)


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
        return self.step_ids(self.model.encode(text))


def sample(logits, rng, temperature=1.0, top_k=None):
    """Draw one id from softmax(logits / temperature) restricted to the top k."""
    z = np.asarray(logits, np.float64) / temperature
    if top_k is not None and top_k < z.size:
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(p.size, p=p))

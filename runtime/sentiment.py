"""The sentiment classifier at run time: raw review text in, positive-class probability out.

The tokenizer (scheme, vocabulary, length policy) is read from the model's metadata,
so the file is all a device needs. Reviews are batched by length to cut padding
cost; the graph stops each review at its true length, so the batching cannot change
an answer.
"""

import numpy as np

from .errors import InputError
from .tokenizer import Tokenizer, pad_batch


class SentimentModel:
    kind = "sentiment"

    def __init__(self, onnx_model, meta, core, path=None):
        """``core``: the ``GraphModel`` this task layer speaks to (feeds checked there)."""
        self.onnx_model, self.meta, self.core, self.path = onnx_model, meta, core, path
        self.engine = core.engine
        self.config = meta.config
        self.tokenizer = Tokenizer.from_dict(meta.vocab)
        # the fast engines check the ranges in their kernel: not twice (their own messages)
        self.engine_checks = self.engine.checks_tokens and self.engine.checks_lengths

    def run(self, tokens, lengths):
        """One graph call: tokens (B, T) int64, lengths (B,) -> (logit (B,), prob (B,))."""
        tokens, lengths = np.asarray(tokens), np.asarray(lengths)
        for name, a in (("tokens", tokens), ("lengths", lengths)):
            if a.dtype.kind not in "iu":
                raise InputError(f"{name} must be integers, not {a.dtype}")
        if tokens.ndim != 2 or lengths.shape != tokens.shape[:1]:
            raise InputError(f"tokens must be (batch, time) and lengths (batch,); got "
                             f"{tokens.shape} and {lengths.shape}")
        if not self.engine_checks:
            self.check_ranges(tokens, lengths)
        out = self.core.run({"tokens": np.asarray(tokens, np.int64),
                               "lengths": np.asarray(lengths, np.int64)})
        return out["logit"], out["prob"]

    def check_ranges(self, tokens, lengths):
        """Token ids in the vocabulary, lengths in [1, T]: typed errors (~6 µs a call, which
        the fast engines' kernels spend on the same checks themselves)."""
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.tokenizer.vocab_size):
            raise InputError(f"token ids must lie in [0, {self.tokenizer.vocab_size})")
        if lengths.size and (lengths.min() < 1 or lengths.max() > tokens.shape[1]):
            raise InputError(f"lengths must lie in [1, {tokens.shape[1]}] (the padded time), got "
                             f"[{lengths.min()}, {lengths.max()}]")

    def predict(self, texts, batch_size=64):
        """(logits, probabilities), each (N,) float32, of raw review texts in input order."""
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, not {batch_size}")
        rows = self.tokenizer.encode_rows(texts)
        order = np.argsort([len(r) for r in rows], kind="stable")
        logits, probs = np.empty(len(rows), np.float32), np.empty(len(rows), np.float32)
        for start in range(0, len(rows), batch_size):
            batch = order[start:start + batch_size]
            logits[batch], probs[batch] = self.run(*pad_batch([rows[i] for i in batch]))
        return logits, probs

    def classify(self, texts, batch_size=64):
        """Positive-class probabilities (N,) float32 of raw review texts."""
        return self.predict(texts, batch_size)[1]

    def known_words(self, texts):
        """How many words (tokens with a letter or digit) of each text the vocabulary knows.

        A review with none (only emoji, punctuation or unseen words) is still scored, from
        punctuation and ``<unk>`` ids alone: its probability says nothing about the text,
        and ``rnnedge classify`` marks it.
        """
        index = self.tokenizer.index
        return [sum(1 for tok in self.tokenizer.tokenize(text)
                    if tok in index and any(c.isalnum() for c in tok)) for text in texts]


def read_reviews(path):
    """Reviews of a text file, one per line; a file that is not UTF-8 text is an InputError."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise InputError(f"review file {path} is a directory; give a text file, one review per line")
    if not path.is_file():
        raise InputError(f"review file {path} does not exist")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise InputError(f"{path} is not a text file (it holds NUL bytes); give one review per line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                         f"convert it, e.g. with iconv -t utf-8") from exc
    return text.splitlines()


def evaluate(model, texts, labels, batch_size=64, on_batch=None):
    """Accuracy and counts of ``model`` on labelled texts; ``on_batch(n)`` reports progress."""
    labels = np.asarray(labels, np.int64)
    if len(texts) != len(labels) or len(texts) == 0:
        raise InputError(f"{len(texts)} texts and {len(labels)} labels: need equal, non-zero counts")
    chunk = max(batch_size * 8, 512)
    probs = []
    for start in range(0, len(texts), chunk):
        probs.append(model.classify(texts[start:start + chunk], batch_size))
        if on_batch:
            on_batch(len(probs[-1]))
    pred = (np.concatenate(probs) >= 0.5).astype(np.int64)
    return {"accuracy": float((pred == labels).mean()), "n": int(len(labels)),
            "correct": int((pred == labels).sum()), "positive_rate": float(pred.mean())}

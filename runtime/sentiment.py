"""The sentiment classifier at run time: raw review text in, positive-class probability out.

The tokenizer (scheme, vocabulary, length policy) is read from the model's metadata,
so the file is all a device needs. Reviews are batched by length to cut padding
cost; the graph stops each review at its true length, so the batching cannot change
an answer.
"""

import numpy as np

from .tokenizer import Tokenizer, pad_batch


class SentimentModel:
    task = "sentiment"

    def __init__(self, onnx_model, meta, engine, path=None):
        self.onnx_model, self.meta, self.engine, self.path = onnx_model, meta, engine, path
        self.config = meta.config
        self.tokenizer = Tokenizer.from_dict(meta.vocab)

    def run(self, tokens, lengths):
        """One graph call: tokens (B, T) int64, lengths (B,) -> (logit (B,), prob (B,))."""
        out = self.engine.run({"tokens": np.asarray(tokens, np.int64),
                               "lengths": np.asarray(lengths, np.int64)})
        return out["logit"], out["prob"]

    def predict(self, texts, batch_size=64):
        """(logits, probabilities), each (N,) float32, of raw review texts in input order."""
        if batch_size < 1:
            from .errors import InputError

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


def read_reviews(path):
    """Reviews of a text file, one per line; a file that is not UTF-8 text is an InputError."""
    from pathlib import Path

    from .errors import InputError

    path = Path(path)
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
    from .errors import InputError

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

"""``rnnedge verify`` for the sentiment classifier: real test reviews in padded batches.

PyTorch (with a checkpoint), onnxruntime, numba and the fast fp32 engine score the same
reviews, batched in their file order so that long and short reviews share batches and
padding is plentiful; every pair is compared on logits and probabilities, and the labels must
agree on every review.
"""

import itertools
import sys

import numpy as np

from rnnedge.runtime.tolerances import FP32, Diff


def _real_reviews(data_dir, n):
    from rnnedge.data.imdb import load_imdb

    try:
        reviews = load_imdb("test", data_dir)
    except Exception as exc:  # the data set is optional for verify: say so and go on
        print(f"note: IMDb test reviews unavailable ({exc}); random token ids only", file=sys.stderr)
        return None
    rng = np.random.default_rng(0)
    return [reviews[i].text for i in rng.choice(len(reviews), n, replace=False)]


def _batches(tokenizer, texts, batch_size):
    from rnnedge.runtime.tokenizer import pad_batch

    rows = tokenizer.encode_rows(texts)
    return [pad_batch(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]


def verify_sentiment(model_path, reference=None, data_dir=None, n=1000, batch_size=64, tol=FP32):
    """Rows of the parity report; ``reference`` is PyTorch's ``run(feeds)`` or None."""
    from rnnedge.runtime.model import load
    from rnnedge.runtime.parity import compare_outputs, sentiment_inputs

    models = {name: load(model_path, engine=name) for name in ("ort", "numba", "fast")}
    runs = {name: m.engine.run for name, m in models.items()}
    if reference is not None:
        runs = {"torch": reference, **runs}
    feeds = {f"random B={f['tokens'].shape[0]} T={f['tokens'].shape[1]}": [f]
             for f in sentiment_inputs(models["ort"].config)}
    texts = _real_reviews(data_dir, n)
    if texts is not None:
        batches = _batches(models["ort"].tokenizer, texts, batch_size)
        feeds[f"imdb test {len(texts)} reviews, batches of {batch_size}"] = [
            {"tokens": ids, "lengths": lengths} for ids, lengths in batches]
    diffs = []
    for label, group in feeds.items():
        outs = {name: _concat([run(f) for f in group]) for name, run in runs.items()}
        for a, b in itertools.combinations(outs, 2):
            diffs += compare_outputs(f"{label} {b} vs {a}", outs[b], outs[a], tol)
            diffs.append(_label_agreement(f"{label} {b} vs {a}", outs[b]["prob"], outs[a]["prob"]))
    return diffs


def _concat(outs):
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def _label_agreement(name, probs_b, probs_a):
    """Labels must agree on every review: a Diff whose max abs is the share that disagree."""
    differs = (probs_b >= 0.5) != (probs_a >= 0.5)
    share = float(differs.mean())
    where = (int(np.argmax(differs)),) if share else ()
    return Diff(f"{name} label agreement {100 * (1 - share):.2f}%", share, share, where,
                share == 0.0, FP32)

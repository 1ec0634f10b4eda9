"""``rnnedge evaluate``, torch-free: a sentiment model's accuracy on labelled raw text, a series
classifier's accuracy, per-class recall and confusion matrix on labelled frames.

A ``limit`` scores a seeded sample stratified by class (``stratified``), never the first cases of
a file: the IMDb test split lists its 12,500 negative reviews first, so its first 500 reviews
are one class. ``optimize --limit`` reads its IMDb and series cases through the same functions.
"""

import numpy as np

from rnnedge.data.imdb import load_imdb, load_labeled_file
from rnnedge.runtime.errors import InputError


TASKS = ("sentiment", "series")  # the classifiers ``evaluate`` scores
SEED = 0  # of the sample a limit takes
SENTIMENT_CLASSES = ("negative", "positive")  # labels 0 and 1


def check_limit(limit):
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, not {limit}")


def stratified(labels, limit=None, seed=SEED, names=None):
    """(sorted indices, sample description) of a seeded sample of ``limit`` of the cases whose
    classes are ``labels``: each class in its share of the whole (largest remainders), drawn
    without replacement. Every case when ``limit`` is None or covers them. ``names``: a class
    name per label value, for the description."""
    check_limit(limit)
    labels = np.asarray(labels)
    if limit is None or limit >= len(labels):
        return np.arange(len(labels)), {"scored": len(labels), "of": len(labels), "sample": "all"}
    classes, counts = np.unique(labels, return_counts=True)
    exact = limit * counts / counts.sum()
    take = np.floor(exact).astype(np.int64)
    for k in np.argsort(-(exact - take), kind="stable")[: limit - int(take.sum())]:
        take[k] += 1  # exact < counts[k] wherever it has a remainder, so take <= counts
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), n, replace=False)
              for c, n in zip(classes, take)]
    name = (lambda c: str(names[c])) if names is not None else str
    return np.sort(np.concatenate(picked)), {
        "scored": int(limit), "of": len(labels), "sample": f"stratified, seed {seed}",
        "seed": seed, "per_class": {name(c): int(n) for c, n in zip(classes.tolist(), take)}}


def describe_sample(sample, what):
    """``"500 of 25,000 IMDb test reviews (seeded sample, 250 per class)"``: the cases a
    ``stratified`` (or contiguous) sample holds, ``what`` naming the whole."""
    if sample["sample"] == "all":
        return f"all {sample['of']:,} {what}"
    if sample["sample"].startswith("contiguous"):
        return (f"the first {sample['scored']:,} of {sample['of']:,} {what} (a contiguous window: "
                f"a language model reads text in order)")
    per_class = sample["per_class"]
    counts = set(per_class.values())
    shares = (f"{counts.pop()} per class" if len(counts) == 1 else
              ", ".join(f"{c} {n}" for c, n in per_class.items()))
    return (f"{sample['scored']:,} of {sample['of']:,} {what} (seeded sample, seed "
            f"{sample['seed']}, {shares})")


def reviews_to_score(split="test", data=None, data_dir=None, limit=None, seed=SEED, sample=None):
    """The labelled reviews ``evaluate`` scores: an IMDb split, or the user's CSV/JSONL file,
    all or a ``stratified`` sample of ``limit``; ``sample`` (a dict) receives its description."""
    check_limit(limit)
    reviews = load_labeled_file(data) if data else load_imdb(split, data_dir)
    keep, described = stratified([r.label for r in reviews], limit, seed, SENTIMENT_CLASSES)
    if sample is not None:
        sample.update(described)
    return [reviews[i] for i in keep]


def load_classifier(path, engine="ort", threads=2):
    """The model file ``path``, loaded once; a typed error unless it is a classifier ``evaluate``
    scores (sentiment or series)."""
    from rnnedge.runtime.model import load

    m = load(path, engine=engine, threads=threads)
    if m.kind not in TASKS:
        from rnnedge.runtime.metadata import KIND_NAMES

        raise InputError(f"{path} is {KIND_NAMES[m.kind]}; this command needs a sentiment model or a "
                         f"series model")
    return m


def evaluate(model, reviews, batch_size=64, on_batch=None):
    """Accuracy and counts of a loaded sentiment ``model`` on ``reviews``; ``on_batch(n)``
    reports progress."""
    from rnnedge.runtime.sentiment import evaluate as score

    return score(model, [r.text for r in reviews], [r.label for r in reviews], batch_size, on_batch)


def evaluate_series(model, data=None, split="test", data_dir=None, limit=None, batch_size=64,
                    missing="error", seed=SEED):
    """Accuracy, per-class recall and confusion of a loaded series ``model`` on a labelled
    ``.ts``/``.npz``/``.csv`` file (default: the Japanese Vowels ``split``), all or a
    ``stratified`` sample of ``limit`` cases; ``missing`` is ``data.series``'s policy for
    missing values."""
    from rnnedge.runtime.series import scores

    sample = {}
    frames, labels, name = labelled_frames(model, data, split, data_dir, limit, missing, seed,
                                           sample)
    probs = model.predict(frames, batch_size)
    return {**scores(probs.argmax(axis=1), labels, model.classes), "data": name, **sample}


def labelled_frames(model, data=None, split="test", data_dir=None, limit=None, missing="error",
                    seed=SEED, sample=None):
    """(frames [(T, C)], label indices in ``model``'s classes, name) of the cases of a labelled
    ``.ts``/``.npz``/``.csv`` file, or of the Japanese Vowels ``split``: all, or a
    ``stratified`` sample of ``limit``; ``sample`` (a dict) receives its description."""
    from rnnedge.data.series import load_series, load_vowels, relabel

    check_limit(limit)
    series = load_series(data, missing) if data else load_vowels(split, data_dir)
    name = str(data or f"Japanese Vowels {split}")
    labels = relabel(series, model.classes, name)
    keep, described = stratified(labels, limit, seed, model.classes)
    if sample is not None:
        sample.update(described)
    return [series.X[i] for i in keep], labels[keep], name

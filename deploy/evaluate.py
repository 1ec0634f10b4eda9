"""``rnnedge evaluate``, torch-free: a sentiment model's accuracy on labelled raw text, a series
classifier's accuracy, per-class recall and confusion matrix on labelled frames."""

from rnnedge.data.imdb import load_imdb, load_labeled_file
from rnnedge.runtime.errors import InputError


TASKS = ("sentiment", "series")  # the classifiers ``evaluate`` scores


def check_limit(limit):
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, not {limit}")


def reviews_to_score(split="test", data=None, data_dir=None, limit=None):
    """The labelled reviews ``evaluate`` scores: an IMDb split, or the user's CSV/JSONL file."""
    check_limit(limit)
    reviews = load_labeled_file(data) if data else load_imdb(split, data_dir)
    return reviews[:limit] if limit else reviews


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
                    missing="error"):
    """Accuracy, per-class recall and confusion of a loaded series ``model`` on a labelled
    ``.ts``/``.npz``/``.csv`` file (default: the Japanese Vowels ``split``); ``missing`` is
    ``data.series``'s policy for missing values."""
    from rnnedge.runtime.series import scores

    frames, labels, name = labelled_frames(model, data, split, data_dir, limit, missing)
    probs = model.predict(frames, batch_size)
    return {**scores(probs.argmax(axis=1), labels, model.classes), "data": name}


def labelled_frames(model, data=None, split="test", data_dir=None, limit=None, missing="error"):
    """(frames [(T, C)], label indices in ``model``'s classes, name) of the first ``limit`` cases
    of a labelled ``.ts``/``.npz``/``.csv`` file, or of the Japanese Vowels ``split``."""
    from rnnedge.data.series import load_series, load_vowels, relabel

    check_limit(limit)
    series = load_series(data, missing) if data else load_vowels(split, data_dir)
    name = str(data or f"Japanese Vowels {split}")
    return series.X[:limit], relabel(series, model.classes, name)[:limit], name

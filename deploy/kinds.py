"""The per-kind adapters of the deploy verbs: where a kind's real inputs come from.

Every verb (verify, optimize, bench) runs one path for every kind of file; what differs is
small and lives here, picked by the file's ``rnnedge.kind`` from ``ADAPTERS``:

* ``real_feeds(model, data_dir, notes, limit)``: graph feeds of real data for ``verify`` (Hamlet
  validation windows, IMDb test reviews in padded batches), ``{label: [feeds, ...]}``;
* ``reference_feeds(model)``: feeds that PyTorch from the source checkpoint can take beside
  the golden ones (a series checkpoint runs raw frames without states);
* ``label_output``: a classifier's answer output, whose labels ``agreement`` compares;
* ``bench(model_path, options)``: what ``rnnedge bench`` times and reports (``bench.py``),
  and ``bench_refuses(batch, time, variants)``: why a flag does not apply, or None.

A user's file has no data set: its golden bundle is its real data. Not here: the checks
themselves (``verify.py``), the gates (``gates.py``).
"""

import numpy as np

from rnnedge.runtime.tolerances import FP32, Diff

CHARLM_WINDOWS = (4, 200)  # (batch, time) of the Hamlet validation windows verify runs
REVIEWS, REVIEW_BATCH = 1000, 64
SERIES_SHAPES = ((1, 1), (1, 9), (3, 17), (5, 31))  # (batch, time); none of the export's


class Adapter:
    """A kind without data of its own: golden inputs only."""

    label_output = None  # the output whose argmax or threshold is the answer

    def real_feeds(self, model, data_dir, notes, limit=None):
        return {}

    def reference_feeds(self, model):
        return None  # None: PyTorch takes every feed verify runs

    def bench(self, model_path, options):
        """Latency per call of every engine that runs the file, streamed frame by frame, or
        whole sequences of (batch, time) when either is given (``bench_generic``)."""
        from .bench_generic import bench_generic, markdown_generic

        shape = (None if options.batch is None and options.time is None
                 else (options.batch or 1, options.time))
        report = bench_generic(model_path, steps=options.steps, warmup=options.warmup,
                               threads=options.threads, engines=options.engines, shape=shape)
        return report, markdown_generic(report)

    def bench_refuses(self, batch, time, variants):
        if variants:
            return ("--variant files are timed beside the char model and the review classifier; "
                    "bench a variant of this model as a file of its own: rnnedge bench VARIANT")
        return None


def _extra(options):
    return {"torch": options.torch_maker} if options.torch_maker else {}


class CharAdapter(Adapter):
    def real_feeds(self, model, data_dir, notes, limit=None):
        from rnnedge.data.download import data_dir as resolve
        from rnnedge.data.hamlet import HAMLET_FILE, extract_play

        path = resolve(data_dir) / HAMLET_FILE
        if not path.is_file():
            notes.append(f"{path} is missing: verified on golden inputs only")
            return {}
        text = extract_play(path.read_text(encoding="utf-8", errors="replace"))
        val = "".join(ch for ch in text[int(0.9 * len(text)):] if ch in model.index)
        batch, time = CHARLM_WINDOWS
        ids = model.encode(val[: batch * time]).reshape(batch, time)
        return {f"hamlet B={batch} T={time}": [{"tokens": ids, **model.zero_state(batch)}]}

    def bench(self, model_path, options):
        """Streaming latency per character at batch 1 (``bench_charlm``)."""
        from .bench_charlm import bench_charlm, markdown

        report = bench_charlm(model_path, _extra(options), steps=options.steps,
                              warmup=options.warmup, threads=options.threads,
                              variants=options.variants, engines=options.engines)
        return report, markdown(report)

    def bench_refuses(self, batch, time, variants):
        if (batch or 1) != 1 or time:
            return ("--batch and --time shape whole-sequence timing; a char model is timed "
                    "streaming, one character per call at batch 1 (--steps sets how many)")
        return None


class ReviewAdapter(Adapter):
    label_output = "prob"

    def real_feeds(self, model, data_dir, notes, limit=None):
        from rnnedge.data.imdb import load_imdb
        from rnnedge.runtime.errors import DataError
        from rnnedge.runtime.tokenizer import pad_batch

        try:
            reviews = load_imdb("test", data_dir)
        except DataError as exc:  # the data set is optional for verify: say so and go on
            notes.append(f"IMDb test reviews unavailable ({exc}): verified on golden inputs only")
            return {}
        rng = np.random.default_rng(0)
        n = min(limit or REVIEWS, len(reviews))
        texts = [reviews[i].text for i in rng.choice(len(reviews), n, replace=False)]
        rows = model.tokenizer.encode_rows(texts)
        batches = [pad_batch(rows[i:i + REVIEW_BATCH]) for i in range(0, len(rows), REVIEW_BATCH)]
        return {f"imdb test {n} reviews, batches of {REVIEW_BATCH}":
                [{"tokens": ids, "lengths": lengths} for ids, lengths in batches]}

    def bench(self, model_path, options):
        """Throughput on ``cases`` IMDb test reviews at batch 1, 8 and 64, or ``batch``, on
        ``threads`` (``bench_sentiment``)."""
        from rnnedge.data.imdb import load_imdb

        from .bench_sentiment import bench_sentiment, markdown_sentiment

        reviews = load_imdb("test", options.data_dir)
        texts = [r.text for r in reviews[::max(1, len(reviews) // options.cases)][:options.cases]]
        report = bench_sentiment(model_path, texts, _extra(options), variants=options.variants,
                                 engines=options.engines, threads=(options.threads,),
                                 batch_sizes=(options.batch,) if options.batch else (1, 8, 64))
        return report, markdown_sentiment(report)

    def bench_refuses(self, batch, time, variants):
        if time:
            return ("--time: a review classifier is timed on real reviews at their own lengths "
                    "(--cases sets how many); --batch sets the batch size")
        return None


class SeriesAdapter(Adapter):
    label_output = "probs"

    def reference_feeds(self, model, seed=3):
        """Raw frames around the stored normalisation, right-padded mixed lengths; the states
        start from zeros (``SeriesModel.run``), as PyTorch's whole-sequence module does."""
        rng = np.random.default_rng(seed)
        mean = np.asarray(model.norm["mean"], np.float32)
        std = np.asarray(model.norm["std"], np.float32)
        feeds = {}
        for batch, time in SERIES_SHAPES:
            frames = (mean + std * rng.standard_normal((batch, time, len(mean)))).astype(np.float32)
            lengths = rng.integers(1, time + 1, batch).astype(np.int64)
            lengths[0] = time
            for b, n in enumerate(lengths):
                frames[b, n:] = 0.0  # right padding, as the runtime pads
            feeds[f"raw frames B={batch} T={time}"] = [{"frames": frames, "lengths": lengths}]
        return feeds


ADAPTERS = {"charlm": CharAdapter(), "sentiment": ReviewAdapter(), "series": SeriesAdapter(),
            "user": Adapter()}


def agreement(name, output, actual, expected):
    """A ``Diff`` whose max abs is the share of cases whose answer differs (0 passes)."""
    a, b = np.asarray(actual[output]), np.asarray(expected[output])
    if a.ndim == 1:  # a probability per case
        differs = (a >= 0.5) != (b >= 0.5)
    else:
        differs = a.argmax(axis=-1) != b.argmax(axis=-1)
    share = float(differs.mean())
    where = (int(np.argmax(differs)),) if share else ()
    return Diff(f"{name} label agreement {100 * (1 - share):.2f}%", share, share, where,
                share == 0.0, FP32)

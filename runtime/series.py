"""Classifiers of real-valued frames at run time: raw variable-length cases in, class probabilities out.

A series file is of kind ``series``: its config (the channel count among it) and class names
are the schema's ``rnnedge.config`` and ``rnnedge.vocab``, the normalisation constants its
``rnnedge.user`` (``runtime/metadata.py``), and it goes through every path a user's file
goes through (golden bundle, state pairs, signature). The graph takes
raw frames (batch, time, channels) float32 and ``lengths`` (batch,) int64 and returns
``logits`` and ``probs`` (batch, classes): the per-channel ``(x - mean) / std`` is inside
the graph, so callers never normalise, and the recurrent net stops each case at its true
length, so padding and batching cannot change an answer. ``SeriesModel`` is a
``GraphModel`` (``run``, ``signature`` as for any file) with ``predict``/``classify`` over
lists of (T_i, C) arrays, batched by length. Numpy only.

A forward model's file also carries its states (``rnnedge.states``: ``h``, ``c`` for an
LSTM, and the running ``pooled``/``seen`` of a mean or max head): ``run`` starts any state
it is not given from zeros, and ``stream()`` feeds a case frame by frame, its ``step``
returning the class probabilities of the frames so far. A bidirectional model has no
states and refuses to stream.
"""

import numpy as np

from .errors import InputError, ModelFileError
from .graph_model import GraphModel, GraphStream

class SeriesModel(GraphModel):
    def __init__(self, engine, signature, meta, path=None):
        super().__init__(engine, signature, meta.states or {}, meta, path)  # {}: bidirectional
        self.classes, self.config = tuple(meta.vocab), meta.config
        self.channels, self.norm = meta.config.get("channels"), meta.user.get("norm")
        self._check_metadata(path)

    def _check_metadata(self, path):
        """The metadata must describe the graph: class names, channels, normalisation."""
        outputs = {o["name"]: o["shape"] for o in self.signature["outputs"]}
        inputs = {i["name"]: i["shape"] for i in self.signature["inputs"]}
        width = (outputs.get("probs") or [None])[-1]
        channels = (inputs.get("frames") or [None])[-1]
        norm = self.norm if isinstance(self.norm, dict) else {}
        wrong = [what for what, bad in (
            (f"{len(self.classes)} class names for {width} outputs",
             isinstance(width, int) and width != len(self.classes)),
            ("class names that are not distinct, printable, non-empty text",
             not all(isinstance(c, str) and c and c.isprintable() for c in self.classes)
             or len(set(self.classes)) != len(self.classes)),
            (f"{self.channels!r} channels where the graph takes {channels}",
             not isinstance(self.channels, int) or isinstance(self.channels, bool)
             or (isinstance(channels, int) and channels != self.channels)),
            ("no per-channel mean and std of that length",
             not all(isinstance(norm.get(k), list) and len(norm[k]) == self.channels
                     for k in ("mean", "std"))),
            ("no frames and lengths inputs", not {"frames", "lengths"} <= set(inputs)))
            if bad]
        if wrong:
            raise ModelFileError(f"{path}: its series metadata says {'; '.join(wrong)}; the file "
                                 f"was altered after export: export it again")

    def run(self, feeds):
        """One call of the graph; the states not in ``feeds`` start from zeros."""
        if isinstance(feeds, dict) and self.states and "frames" in feeds:
            missing = [n for n in self.states if n not in feeds]
            zeros = self.zero_states(len(np.asarray(feeds["frames"]))) if missing else {}
            feeds = {**{n: zeros[n] for n in missing}, **feeds}
        return super().run(feeds)

    def stream(self, batch=1, states=None):
        """A ``SeriesStream`` over one case (from ``states``, default zeros); refused for a
        bidirectional model."""
        if self.config.get("bidirectional"):
            raise InputError("a bidirectional model reads each case whole, backwards too, so it "
                             "cannot stream; classify whole cases with predict(), or train a "
                             "forward model (no --bidirectional) to stream")
        if not self.states:  # a forward model exported without its states: GraphModel refuses
            return super().stream(batch, states)
        if batch != 1:
            raise InputError(f"a series stream runs one case (batch 1), not {batch}")
        return SeriesStream(self, 1, states)

    def check_cases(self, cases):
        """The cases as (T_i, C) float32 arrays; typed errors for any other shape or value."""
        if isinstance(cases, np.ndarray) and cases.ndim == 2:
            raise InputError("give a list of cases, each (time, channels); one case is [case]")
        if len(cases) == 0:
            raise InputError("no case to classify")
        out = []
        for k, case in enumerate(cases):
            x = np.asarray(case)
            if x.dtype.kind not in "fiu":
                raise InputError(f"case {k}: frames must be numbers, not {x.dtype}")
            if x.ndim != 2 or x.shape[1] != self.channels or x.shape[0] < 1:
                raise InputError(f"case {k} has shape {x.shape}; the model takes (time >= 1, "
                                 f"{self.channels}) frames")
            if not np.all(np.isfinite(x)):
                raise InputError(f"case {k} holds NaN or infinite values; fill missing values first")
            out.append(np.ascontiguousarray(x, dtype=np.float32))
        return out

    def predict(self, cases, batch_size=32):
        """Class probabilities (N, K) float32 of raw cases, in input order."""
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, not {batch_size}")
        cases = self.check_cases(cases)
        order = np.argsort([len(x) for x in cases], kind="stable")  # least padding
        probs = np.empty((len(cases), len(self.classes)), np.float32)
        for start in range(0, len(cases), batch_size):
            batch = order[start:start + batch_size]
            frames, lengths = pad_cases([cases[i] for i in batch])
            probs[batch] = self.run({"frames": frames, "lengths": lengths})["probs"]
        return probs

    def classify(self, cases, batch_size=32):
        """(class names, their probabilities (N,)) of raw cases."""
        probs = self.predict(cases, batch_size)
        best = probs.argmax(axis=1)
        return [self.classes[k] for k in best], probs[np.arange(len(best)), best]


class SeriesStream(GraphStream):
    """One case frame by frame: ``step(frames)`` -> the class probabilities so far (K,).

    After the last frame they equal ``predict([case])``. ``step`` also takes a feeds dict,
    as any ``GraphStream`` (the generic tools: ``rnnedge bench``), and then returns every
    output; ``reset()`` starts a new case.
    """

    def step(self, frames):
        if isinstance(frames, dict):
            return super().step(frames)
        x = np.asarray(frames)
        x = x[0] if x.ndim == 3 and x.shape[0] == 1 else x  # (1, T, C) -> (T, C)
        (x,) = self.model.check_cases([x])
        lengths = np.array([len(x)], np.int64)
        return super().step({"frames": x[None], "lengths": lengths})["probs"][0]


def pad_cases(cases):
    """frames (B, T, C) right-padded with zeros, lengths (B,) int64, of (T_i, C) cases."""
    lengths = np.array([len(x) for x in cases], dtype=np.int64)
    frames = np.zeros((len(cases), lengths.max(), cases[0].shape[1]), np.float32)
    for row, x in enumerate(cases):
        frames[row, :len(x)] = x
    return frames, lengths


def scores(pred, labels, classes):
    """Accuracy, per-class recall and the confusion matrix (rows: true class, columns: predicted)."""
    pred, labels = np.asarray(pred, np.int64), np.asarray(labels, np.int64)
    if len(pred) != len(labels) or len(labels) == 0:
        raise InputError(f"{len(pred)} predictions and {len(labels)} labels: need equal, "
                         f"non-zero counts")
    K = len(classes)
    confusion = np.zeros((K, K), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    support = confusion.sum(axis=1)
    recall = {c: (float(confusion[k, k] / support[k]) if support[k] else None)
              for k, c in enumerate(classes)}
    return {"accuracy": float(np.mean(pred == labels)), "n": int(len(labels)),
            "correct": int((pred == labels).sum()), "classes": list(classes),
            "recall": recall, "confusion": confusion.tolist()}

"""The gates a variant must pass on real data before ``rnnedge optimize`` writes it.

The variant and its fp32 source each run through the runtime on its engine (the source on
ort; the variant on ort, or on fast-int8 for the numba int8 variant): Hamlet validation bits
per character (charlm; state carried across windows as in training evaluation; top-1
agreement reported) or IMDb test accuracy and label agreement (sentiment). Not here: building
and writing the variant (``variants.py``, ``optimize.py``).
"""

import math
import os
from dataclasses import dataclass

import numpy as np

from rnnedge.runtime.errors import InputError
from rnnedge.runtime.model import load

EVAL_BATCH, EVAL_STEPS = 16, 200  # Hamlet validation layout of train.charlm.evaluate
EVAL_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Gates:
    """How much a variant may lose against its fp32 source on real data."""

    max_bpc_rise: float = 0.02  # charlm: relative rise of validation bits per character
    max_accuracy_drop: float = 0.005  # sentiment: absolute drop of test accuracy (0.5 points)
    min_agreement: float = 0.99  # sentiment: share of reviews labelled as the fp32 model does


GATES = Gates()


class Judge:
    """``judge(path)`` -> the gate report of the variant at ``path`` against its source;
    ``inputs`` says what it was gated on, ``sample`` which of its cases (``evaluate.stratified``)
    when the judge read them before (a series classifier's)."""

    def __init__(self, judge, engine, inputs, sample=None):
        self.judge, self.engine, self.inputs, self.sample = judge, engine, inputs, sample

    def __call__(self, path):
        candidate = load(path, engine=self.engine, threads=EVAL_THREADS)
        return {**self.judge(candidate), **({"sample": self.sample} if self.sample else {}),
                "engines": {"reference": "ort", "candidate": candidate.engine.name}}


def judge_for(source, meta, engine, inputs=None, data=None, data_dir=None, limit=None, gates=None,
              seed=0):
    """The ``Judge`` of a variant of ``source`` run on ``engine``, by the file's kind: bits per
    character on Hamlet (charlm), accuracy on IMDb (sentiment) or on labelled frames (series,
    ``data``), output agreement on the golden bundle or ``inputs`` (a user's file, or any file
    given ``inputs``). The source runs on onnxruntime in fp32. ``limit``: a seeded (``seed``)
    sample of that many reviews or labelled cases, stratified by class; the first ``limit``
    Hamlet validation characters, a contiguous window, as a language model reads text."""
    from rnnedge.runtime.golden import check_fits, from_props

    from .gate_generic import GENERIC_GATES, gate_generic, read_inputs

    reference = load(source, engine="ort", threads=EVAL_THREADS)
    by_outputs = inputs is not None or meta.kind == "user"
    if data is not None and (meta.kind != "series" or by_outputs):
        raise InputError("--data gates a series classifier on labelled frames; this file is not "
                         "one, or --inputs was given too")
    if by_outputs:
        golden = [] if inputs else from_props(meta.props)
        check_fits(golden, reference.core.signature, source)
        cases = (read_inputs(inputs, reference.core.signature) if inputs
                 else [c.inputs for c in golden])
        if not cases:
            names = ", ".join(i["name"] for i in reference.core.signature["inputs"])
            raise InputError(f"{source} has no golden bundle to gate on; give --inputs FILE.npz "
                             f"with real inputs ({names})")
        gates = gates or GENERIC_GATES
        return Judge(lambda c: gate_generic(reference.core, c.core, cases, gates), engine,
                     str(inputs) if inputs else "golden bundle")
    if meta.kind == "series":
        from .evaluate import labelled_frames
        from .gate_series import SERIES_GATES, gate_series

        sample = {}
        cases = labelled_frames(reference, data, "test", data_dir, limit, seed=seed, sample=sample)
        gates = gates or SERIES_GATES
        return Judge(lambda c: gate_series(reference, c, cases, gates), engine, cases[2], sample)
    gates = gates or GATES
    if meta.kind == "charlm":
        return Judge(lambda c: gate_charlm(reference, c, data_dir, limit, gates), engine,
                     "hamlet validation")
    return Judge(lambda c: gate_sentiment(reference, c, data_dir, limit, gates, seed), engine,
                 "imdb test")


def summary_lines(gate):
    """The gate's lines of ``rnnedge optimize``'s summary, by what it measured."""
    engines = gate["engines"]
    on = f"fp32 {engines['reference']} -> {engines['candidate']}"
    if "bpc" in gate:
        return [f"gate on {gate['chars']} Hamlet validation characters ({on}): "
                f"{gate['bpc_fp32']:.4f} -> {gate['bpc']:.4f} bits/char "
                f"({gate['bpc_rise']:+.2%}, at most {gate['max_bpc_rise']:+.2%}), "
                f"top-1 agreement {gate['top1_agreement']:.2%}"]
    if "reviews" in gate:
        return [f"gate on {gate['reviews']} IMDb test reviews ({on}): accuracy "
                f"{gate['accuracy_fp32']:.4f} -> {gate['accuracy']:.4f} (drop "
                f"{gate['accuracy_drop'] * 100:.2f} points, at most "
                f"{gate['max_accuracy_drop'] * 100:.2f}), labels agree on "
                f"{gate['agreement']:.2%} (at least {gate['min_agreement']:.0%})"]
    if "drop_points" in gate:
        from .gate_series import summary_lines as series_lines

        return series_lines(gate)
    rows = []
    for name, o in gate["outputs"].items():
        agree = (f", argmax agrees on {o['argmax_agreement']:.2%}" if "argmax_agreement" in o else "")
        rows.append(f"  {name}: max abs {o['max_abs']:.3g} ({o['range_error']:.2%} of its range){agree}")
    return [f"gate on {gate['cases']} input case(s), {on} (at most "
            f"{gate['max_range_error']:.0%} of each output's range, argmax agreement at least "
            f"{gate['min_argmax_agreement']:.0%}):"] + rows


def bits_per_char(model, ids):
    """(bits per character, top-1 ids (B, n)) of a runtime char model over ``ids``.

    The text is laid out as ``EVAL_BATCH`` streams cut into windows of ``EVAL_STEPS``, the
    state carried from window to window, as ``train.charlm.evaluate`` does.
    """
    from rnnedge.data.hamlet import stream_windows

    state, nats, count, top = None, 0.0, 0, []
    for x, y in stream_windows(ids, EVAL_BATCH, EVAL_STEPS):
        logits, state = model.run(x, state)  # (B, T, V)
        z = logits.astype(np.float64)
        zmax = z.max(axis=-1, keepdims=True)
        log_norm = np.log(np.exp(z - zmax).sum(axis=-1)) + zmax[..., 0]  # (B, T)
        nats += float((log_norm - np.take_along_axis(z, y[..., None], -1)[..., 0]).sum())
        count += y.size
        top.append(logits.argmax(axis=-1))
    return nats / count / math.log(2), np.concatenate(top, axis=1)


def gate_charlm(reference, candidate, data_dir=None, limit=None, gates=GATES):
    from rnnedge.data.hamlet import CharCorpus, load_text

    corpus = CharCorpus.from_text(load_text(None, data_dir))
    if tuple(reference.vocab) != corpus.vocab:
        raise InputError("the model's vocabulary is not Hamlet's: the charlm gate measures bits "
                         "per character on the Hamlet validation text, so it needs a Hamlet model")
    ids = corpus.val[:limit] if limit else corpus.val  # a window: the model reads text in order
    bpc_fp32, top_fp32 = bits_per_char(reference, ids)
    bpc, top = bits_per_char(candidate, ids)
    rise = bpc / bpc_fp32 - 1
    failures = [] if rise <= gates.max_bpc_rise else [
        f"validation bits per character rose {rise:.2%} ({bpc_fp32:.4f} -> {bpc:.4f}), "
        f"more than the {gates.max_bpc_rise:.2%} allowed"]
    sample = {"scored": int(len(ids)), "of": int(len(corpus.val)),
              "sample": "contiguous window from the start" if len(ids) < len(corpus.val) else "all"}
    return {"data": "hamlet validation", "chars": int(len(ids)), "sample": sample,
            "bpc_fp32": bpc_fp32, "bpc": bpc, "bpc_rise": rise,
            "top1_agreement": float((top == top_fp32).mean()),
            "max_bpc_rise": gates.max_bpc_rise, "failures": failures, "passed": not failures}


def gate_sentiment(reference, candidate, data_dir=None, limit=None, gates=GATES, seed=0):
    from .evaluate import reviews_to_score

    sample = {}
    reviews = reviews_to_score("test", None, data_dir, limit, seed, sample)
    texts, labels = [r.text for r in reviews], np.array([r.label for r in reviews])
    pred_fp32 = reference.classify(texts) >= 0.5
    pred = candidate.classify(texts) >= 0.5
    acc_fp32, acc = float((pred_fp32 == labels).mean()), float((pred == labels).mean())
    drop, agreement = acc_fp32 - acc, float((pred == pred_fp32).mean())
    failures = []
    if round(drop, 12) > gates.max_accuracy_drop:
        failures.append(f"test accuracy dropped {drop * 100:.2f} points ({acc_fp32:.4f} -> "
                        f"{acc:.4f}), more than the {gates.max_accuracy_drop * 100:.2f} allowed")
    if agreement < gates.min_agreement:
        failures.append(f"labels agree with fp32 on {agreement:.2%} of reviews, fewer than the "
                        f"{gates.min_agreement:.2%} required")
    return {"data": "imdb test", "reviews": len(texts), "sample": sample, "accuracy_fp32": acc_fp32,
            "accuracy": acc, "accuracy_drop": drop, "agreement": agreement,
            "max_accuracy_drop": gates.max_accuracy_drop, "min_agreement": gates.min_agreement,
            "failures": failures, "passed": not failures}

"""The accuracy gate of a series classifier's variant: its accuracy on labelled frames.

A series file (``runtime/series.py``) has a task metric, so its int8 variant is gated on what a
user of it measures: the accuracy of the fp32 source (onnxruntime) and of the variant (on the
engine that runs it: ``fast-int8`` for ``--numba-int8``) on the same labelled cases, a
``.ts``/``.npz``/``.csv`` file (``rnnedge optimize --data``) or, by default, the Japanese Vowels
test split, as ``rnnedge evaluate`` reads it. It passes when the accuracy drops by at most
``max_drop_points`` and the two agree on the predicted class of nearly every case. The per-output
range check of ``gate_generic`` is not applied: a state output's range error says nothing about
the answer, and the streamed answer equals the whole one on every engine (``rnnedge verify``).
"""

from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class SeriesGates:
    max_drop_points: float = 0.5  # accuracy points the variant may lose
    min_agreement: float = 0.98  # cases whose predicted class equals the fp32 source's


SERIES_GATES = SeriesGates()


def gate_series(reference, candidate, cases, gates=SERIES_GATES):
    """The gate report of ``candidate`` against ``reference`` (loaded series models) on ``cases``."""
    frames, labels, name = cases
    ref = reference.predict(frames).argmax(axis=1)
    got = candidate.predict(frames).argmax(axis=1)
    acc_ref, acc = float(np.mean(ref == labels)), float(np.mean(got == labels))
    drop, agreement = 100 * (acc_ref - acc), float(np.mean(ref == got))
    failures = []
    if drop > gates.max_drop_points:
        failures.append(f"accuracy drops by {drop:.2f} points ({acc_ref:.4f} -> {acc:.4f}; at "
                        f"most {gates.max_drop_points})")
    if agreement < gates.min_agreement:
        failures.append(f"the predicted class agrees with fp32 on {agreement:.1%} of the cases "
                        f"(at least {gates.min_agreement:.0%})")
    return {"data": name, "cases": len(labels), "accuracy_fp32": acc_ref, "accuracy": acc,
            "drop_points": drop, "agreement": agreement, "passed": not failures,
            "failures": failures, "max_drop_points": gates.max_drop_points,
            "min_agreement": gates.min_agreement}


def summary_lines(gate):
    """The gate's lines of ``rnnedge optimize``'s summary."""
    on = gate["engines"]["candidate"]
    return [f"gate on {gate['cases']} labelled cases of {gate['data']}, fp32 ort -> {on}: accuracy "
            f"{gate['accuracy_fp32']:.4f} -> {gate['accuracy']:.4f} (drop "
            f"{gate['drop_points']:.2f} points, at most {gate['max_drop_points']}), classes agree "
            f"on {gate['agreement']:.1%} (at least {gate['min_agreement']:.0%})"]

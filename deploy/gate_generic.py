"""The accuracy gate of a variant of any model: output agreement on its golden or the user's inputs.

A model rnnedge did not define has no task metric, so the gate compares the variant's outputs
with its fp32 source's on real inputs: the golden bundle stored at export, or an ``.npz`` of
inputs the user gives (``rnnedge optimize --inputs``; one array per graph input, or several
cases as ``<case>/<name>``). Per output: the max absolute difference, and that difference
over the output's range (max |fp32 output|); for class scores (float outputs whose last axis
has 2 or more entries) the share of positions whose argmax agrees.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import InputError


@dataclass(frozen=True)
class GenericGates:
    max_range_error: float = 0.05  # max |variant - fp32| over max |fp32|, each output
    min_argmax_agreement: float = 0.98  # class-score outputs


GENERIC_GATES = GenericGates()


def read_inputs(path, signature):
    """Cases (a list of feed dicts) of a user's ``.npz``, checked against the graph's inputs."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--inputs {path} {'is a directory' if path.is_dir() else 'does not exist'}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as exc:
        raise InputError(f"--inputs {path} is not a readable .npz ({exc})") from exc
    names = [i["name"] for i in signature["inputs"]]
    cases = {}
    for key, value in arrays.items():
        case, _, name = key.rpartition("/")
        cases.setdefault(case, {})[name] = value
    for case, feeds in cases.items():
        if sorted(feeds) != sorted(names):
            raise InputError(f"--inputs {path}{' case ' + case if case else ''} holds "
                             f"{', '.join(sorted(feeds))}; the model takes {', '.join(names)}")
    return [cases[k] for k in sorted(cases)]


def gate_generic(reference, candidate, cases, gates=GENERIC_GATES):
    """The gate report of ``candidate`` against ``reference`` (both loaded models) over ``cases``.

    State outputs (``reference.states``) are held to the range error only: no argmax there.
    """
    states = set(getattr(reference, "states", {}).values())
    if not cases:
        raise InputError("no inputs to gate on: the file has no golden bundle; give --inputs FILE.npz")
    rows = {}
    for feeds in cases:
        ref, got = reference.run(feeds), candidate.run(feeds)
        for name, expected in ref.items():
            row = rows.setdefault(name, {"max_abs": 0.0, "range": 0.0, "agree": 0, "positions": 0})
            expected, actual = np.asarray(expected, np.float64), np.asarray(got[name], np.float64)
            row["max_abs"] = max(row["max_abs"], float(np.abs(actual - expected).max()))
            row["range"] = max(row["range"], float(np.abs(expected).max()))
            if name not in states and expected.ndim >= 2 and expected.shape[-1] >= 2:
                row["agree"] += int((actual.argmax(-1) == expected.argmax(-1)).sum())
                row["positions"] += int(np.prod(expected.shape[:-1]))
    failures, outputs = [], {}
    for name, row in rows.items():
        error = row["max_abs"] / max(row["range"], 1e-12)
        out = {"max_abs": row["max_abs"], "range_error": error}
        if error > gates.max_range_error:
            failures.append(f"{name}: max abs {row['max_abs']:.3g} is {error:.1%} of its range "
                            f"(at most {gates.max_range_error:.0%})")
        if row["positions"] and row["range"] > 0:
            share = row["agree"] / row["positions"]
            out["argmax_agreement"] = share
            if share < gates.min_argmax_agreement:
                failures.append(f"{name}: argmax agrees on {share:.1%} of positions (at least "
                                f"{gates.min_argmax_agreement:.0%})")
        outputs[name] = out
    return {"cases": len(cases), "outputs": outputs, "passed": not failures, "failures": failures,
            "max_range_error": gates.max_range_error,
            "min_argmax_agreement": gates.min_argmax_agreement}

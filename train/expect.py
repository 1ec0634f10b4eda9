"""The band a preset expects its model to reach (its ``[expect]`` table), and the verdict.

    [expect]                  # configs/hamlet_demo.toml
    val_bpc_max = 2.6         # the best epoch's validation bits per character, at most

A run given such a preset ends with one line that compares its best epoch with the band:
``quality: ...`` inside it, ``WARNING: undertrained: ...`` outside it, with the likely cause
(the time budget ran out, training stopped early) and what to do. The call still succeeds: the
checkpoints are written, and the line (also in the log, as a ``quality`` record) says what
they are worth. The band is not a setting: it changes nothing that is computed. Torch-free.
"""

import math
from dataclasses import dataclass

from rnnedge.runtime.errors import InputError

from .config import read_preset

TABLE = "expect"
BANDS = {  # key -> (metric of the best epoch, the bound it sets, how the metric reads)
    "val_bpc_max": ("val_bpc", "max", "{:.3f} bits/char"),
    "val_accuracy_min": ("val_acc", "min", "validation accuracy {:.4f}"),
}
RANGES = {"val_bpc": (0.0, math.inf), "val_acc": (0.0, 1.0)}  # open below, closed above


@dataclass(frozen=True)
class Band:
    key: str
    bound: float
    preset: str

    @property
    def metric(self):
        return BANDS[self.key][0]

    def holds(self, value):
        return value <= self.bound if BANDS[self.key][1] == "max" else value >= self.bound

    def reads(self, value):
        return BANDS[self.key][2].format(value)

    def __str__(self):
        return f"{'<=' if BANDS[self.key][1] == 'max' else '>='} {self.bound:g}"


def load_bands(preset, metrics):
    """The ``Band`` s of ``preset``'s [expect] table, for a task whose best epoch reports
    ``metrics``; none without a preset or a table. Typed errors name a key that is unknown or
    of another task, and a bound that is not a number in the metric's range."""
    table = read_preset(preset).get(TABLE) if preset else None
    if not isinstance(table, dict):  # a flat `expect = ...` is an unknown setting (config.py)
        return []
    mine = sorted(k for k, (metric, _, _) in BANDS.items() if metric in metrics)
    wrong = sorted(set(table) - set(mine))
    if wrong:
        raise InputError(f"preset {preset}: [{TABLE}] {', '.join(wrong)} "
                         f"{'is' if len(wrong) == 1 else 'are'} not a band of this task; "
                         f"it takes {', '.join(mine)}")
    return [Band(key, _bound(preset, key, value), str(preset)) for key, value in table.items()]


def _bound(preset, key, value):
    low, high = RANGES[BANDS[key][0]]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and low < value <= high):
        raise InputError(f"preset {preset}: [{TABLE}] {key} must be a number in "
                         f"({low:g}, {high:g}], not {value!r}")
    return float(value)


def judge(bands, best, history, epochs, minutes):
    """The ``quality`` record of a run whose best epoch is ``best`` (with ``stopped``, its
    reason to stop), or None without bands; its ``line`` is what the command prints last."""
    if not bands:
        return None
    checks = [{"key": b.key, "value": best[b.metric], "bound": b.bound,
               "ok": b.holds(best[b.metric])} for b in bands]
    where = f"the band of {bands[0].preset}"
    if all(c["ok"] for c in checks):
        said = "; ".join(f"{b.reads(best[b.metric])}, within {where} ({b})" for b in bands)
        line = f"quality: {said}"
    else:
        said = "; ".join(f"{b.reads(best[b.metric])}, {where} is {b}" for b, c in
                         zip(bands, checks) if not c["ok"])
        why = cause(best["stopped"], history[-1], epochs, minutes)
        line = f"WARNING: undertrained: {said} ({why})"
    return {"event": "quality", "ok": all(c["ok"] for c in checks), "checks": checks,
            "line": line}


def cause(stopped, last, epochs, minutes):
    """Why a run may have come out below its band, from how it stopped (``last``: the record
    of its last epoch), and what to do."""
    if stopped == "budget":
        where = (f"in epoch {last['epoch']} at step {last['steps']}/{last['steps_total']}"
                 if last.get("partial") else f"after {last['epoch']} of {epochs} epochs")
        return (f"the time budget of {minutes:g} min ran out {where}; rerun with more "
                f"--max-minutes, or with fewer other jobs on the machine")
    if stopped == "early":
        return (f"validation stopped improving and training stopped early after epoch "
                f"{last['epoch']} of {epochs}; check the settings against the preset")
    return (f"all {epochs} epoch{'s' if epochs != 1 else ''} ran; check the settings and the "
            f"data against the preset")

"""Real-valued frames: ``rnnedge train series`` (torch) and ``rnnedge classify-series`` (torch-free).

``rnnedge evaluate`` scores series classifiers too (``check.py`` hands them to
``deploy.evaluate.evaluate_series``); ``series_report`` is its text form.
"""

import time
from pathlib import Path
from typing import Optional

import typer

from rnnedge.train.config import SeriesConfig, SeriesTrainConfig

from .app import AS_JSON, DATA_DIR, ENGINE, THREADS, app, emit_json
from .train import (DEVICE, MAX_MINUTES, PRESET, RESUME, classifier_summary, say_once,
                    say_quality, train_app, with_settings)
from .train import THREADS as TORCH_THREADS


@train_app.command("series",
    epilog='Example: rnnedge train series --config configs/vowels_best.toml --out runs/vowels')
@with_settings(SeriesTrainConfig, SeriesConfig)
def train_series(out: Path = typer.Option(Path("runs/series"), help="checkpoint directory"),
                 data: Optional[Path] = typer.Option(None, help="training cases: .ts, .npz or .csv "
                                                     "(default: Japanese Vowels)"),
                 test: Optional[Path] = typer.Option(None, help="test cases for the final number "
                                                     "(default: Japanese Vowels test with no --data)"),
                 missing: str = typer.Option("error", help="missing values (?, NaN) in your "
                                             "files: error (naming the line) or interpolate"),
                 data_dir: Optional[Path] = DATA_DIR, preset: Optional[Path] = PRESET,
                 max_minutes: Optional[float] = MAX_MINUTES, device: str = DEVICE,
                 resume: Optional[Path] = RESUME, threads: Optional[int] = TORCH_THREADS,
                 **settings):
    """Classifier of real-valued frames, early-stopped on a validation split or weight-averaged
    (Japanese Vowels by default)."""
    since = time.perf_counter()  # --max-minutes counts importing torch too
    from rnnedge.train.series import train_series as run

    best = run(out, data=data, test=test, missing=missing, data_dir=data_dir,
               max_minutes=max_minutes, since=since, device=device, resume=resume,
               threads=threads, preset=preset, **settings)
    say_once(classifier_summary(best, out))
    say_quality(best)


@app.command("classify-series",
    epilog='Example: rnnedge classify-series runs/vowels.onnx my_recordings.ts --json')
def classify_series(model: Path, file: Path = typer.Argument(..., help="cases: .ts, .npz or .csv"),
                    missing: str = typer.Option("error", help="missing values: error or interpolate"),
                    as_json: bool = AS_JSON, batch_size: int = typer.Option(32, "--batch-size"),
                    engine: str = ENGINE, threads: int = THREADS):
    """Class and its probability for each case of FILE, with a series classifier."""
    from rnnedge.data.series import load_series
    from rnnedge.runtime.model import load

    from .app import check_task

    m = load(model, engine=engine, threads=threads)
    check_task(m, "series", model)
    cases = load_series(file, missing=missing)
    names, probs = m.classify(cases.X, batch_size=batch_size)
    truth = [cases.classes[k] for k in cases.y] if cases.y is not None else [None] * len(names)
    rows = [{"case": k, "frames": len(x), "class": c, "prob": float(p), "label": t}
            for k, (x, c, p, t) in enumerate(zip(cases.X, names, probs, truth))]
    if as_json:
        emit_json("classify-series", {"model": str(model), "results": rows})
        return
    for r in rows:
        typer.echo(f"{r['case']}\t{r['class']}\t{r['prob']:.4f}"
                   + (f"\t(label {r['label']})" if r["label"] is not None else ""))


def series_report(result):
    """The text of ``rnnedge evaluate`` for a series classifier."""
    lines = [f"accuracy {result['accuracy']:.4f} ({result['correct']}/{result['n']}) on {result['data']}",
             "recall per class: " + ", ".join(f"{c} {r:.3f}" if r is not None else f"{c} -"
                                               for c, r in result["recall"].items()),
             "confusion (rows: true class, columns: predicted, in the order "
             + " ".join(result["classes"]) + "):"]
    return "\n".join(lines + ["  " + " ".join(f"{v:4d}" for v in row) for row in result["confusion"]])

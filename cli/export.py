"""Making files: ``export`` (a checkpoint, or the user's own module) and ``optimize``."""

from pathlib import Path
from typing import List, Optional

import typer

from rnnedge.runtime.errors import InputError
from rnnedge.runtime.quiet import quiet

from .app import AS_JSON, DATA_DIR, app, emit_json


@app.command("export", epilog='Example: rnnedge export runs/charlm/best.pt --out runs/charlm.onnx')
def export_cmd(checkpoint: Optional[Path] = typer.Argument(None, help="an rnnedge checkpoint "
                                                           "(or use --model)"),
               out: Path = typer.Option(..., "--out", help="ONNX file to write"),
               model: Optional[str] = typer.Option(None, help="your own module: path/to/file.py:"
                                                   "factory (a function returning the nn.Module)"),
               weights: Optional[Path] = typer.Option(None, help="--model: a state_dict file"),
               input: List[str] = typer.Option([], "--input", help="--model: NAME:DTYPE[DIMS], dims "
                                               "named batch/time are dynamic, e.g. "
                                               "feats:float32[batch,time,40]; DTYPE float32, "
                                               "float16, float64, int64, int32, int16, int8, "
                                               "uint8 or bool (repeatable, in forward's order)"),
               output: List[str] = typer.Option([], "--output", help="--model: output name "
                                                "(repeatable, in forward's order)"),
               state: List[str] = typer.Option([], "--state", help="--model: IN=OUT, a state input "
                                               "and the output that carries it, e.g. h=h_new"),
               lengths: Optional[str] = typer.Option(None, help="--model: the input of true lengths "
                                                     "(default: the int64 [batch] input whose name "
                                                     "contains 'len', if one does)"),
               min_time: Optional[int] = typer.Option(None, "--min-time", help="--model: the shortest "
                                                      "time length the module takes (default: found "
                                                      "by running it at 1, 2, 4, ... steps)"),
               metadata: Optional[Path] = typer.Option(None, help="--model: JSON file of your own "
                                                       "metadata (labels, normalisation)"),
               exporter: str = typer.Option("auto", help="--model: auto, torchscript or dynamo"),
               verbose: bool = typer.Option(False, "--verbose", "-v", help="show the exporters' "
                                            "own warnings (on stderr)")):
    """Export a checkpoint, or your own module (--model), to a checked, self-describing ONNX file."""
    if (checkpoint is None) == (model is None):
        raise InputError("give either a CHECKPOINT or --model path/to/file.py:factory")
    from rnnedge.export.user_model import exporter_output

    noise = []
    try:
        with exporter_output() as noise:
            text = (_export_user(model, out, weights, input, output, state, lengths, min_time,
                                 metadata, exporter)
                    if model is not None else _export_checkpoint(checkpoint, out))
    finally:  # the exporters' own words, even when the export failed
        for line in noise if verbose else ():
            typer.echo(line, err=True)
    typer.echo(text)
    if noise and not verbose and not quiet():
        typer.echo(f"{len(noise)} exporter warning{'s' if len(noise) > 1 else ''} hidden "
                   f"(--verbose shows them)")


def _export_user(model, out, weights, inputs, outputs, states, lengths, min_time, metadata,
                 exporter):
    from rnnedge.export.from_specs import export_from_specs

    report = export_from_specs(model, out, weights=weights, inputs=inputs, outputs=outputs,
                               states=states, lengths=lengths, min_time=min_time,
                               metadata=metadata, exporter=exporter)
    return user_summary(report)


def _export_checkpoint(checkpoint, out):
    from rnnedge.export.exporter import export

    path, diffs = export(checkpoint, out)
    worst = max(diffs, key=lambda d: d.max_abs)
    return (f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB); parity with PyTorch over "
            f"{len(diffs)} outputs, worst {worst}")


def user_summary(report):
    lines = [f"wrote {report.path} ({report.path.stat().st_size / 1e6:.2f} MB) with the "
             f"{report.exporter} exporter, opset {report.opset}",
             f"parity with your module at {len(report.checked)} shapes: max abs "
             f"{report.max_abs:.2g}; {len(report.golden)} golden cases stored for `rnnedge verify`",
             f"(batch, time) shapes checked: {_shapes(report.shapes)}"]
    lines += report.notes
    lines += [f"rewrote: {r}" for r in report.rewrites]
    lines += [f"{name} exporter not used: {why}" for name, why in report.skipped.items()
              if not why.startswith("not tried")]
    return "\n".join(lines)


def _shapes(shapes):
    if shapes and all(t is None for _, t in shapes):
        return "batch " + ", ".join(str(b) for b, _ in shapes) + " (time fixed)"
    return " ".join(f"({b}, {t})" for b, t in shapes)


@app.command("optimize",
    epilog='Example: rnnedge optimize runs/charlm.onnx --int8 --out runs/charlm.int8.onnx')
def optimize_cmd(model: Path, out: Path = typer.Option(..., "--out", help="variant to write "
                                                       "(.ort with --ort-format)"),
                 int8: bool = typer.Option(False, "--int8", help="dynamic int8 quantization"),
                 fp16: bool = typer.Option(False, "--fp16", help="fp16 weights, fp32 compute"),
                 ort_format: bool = typer.Option(False, "--ort-format",
                                                 help="offline-optimized ORT format (minimal builds)"),
                 numba_int8: bool = typer.Option(False, "--numba-int8",
                                                 help="gate the numba int8 engine (--engine "
                                                 "fast-int8: LSTM, GRU and RNN); a gate-only "
                                                 "variant: the file is the fp32 model"),
                 force: bool = typer.Option(False, "--force", help="write even if the gate fails"),
                 data_dir: Optional[Path] = DATA_DIR,
                 limit: Optional[int] = typer.Option(None, help="gate on N reviews or labelled "
                                                     "cases (a seeded sample, stratified by "
                                                     "class) or the first N Hamlet characters"),
                 seed: int = typer.Option(0, help="--limit: the sample's seed"),
                 inputs: Optional[Path] = typer.Option(None, help="your own model: an .npz of real "
                                                       "inputs to gate on (default: its golden bundle)"),
                 data: Optional[Path] = typer.Option(None, help="a series classifier: labelled "
                                                     ".ts/.npz/.csv frames to gate its accuracy on "
                                                     "(default: Japanese Vowels test)"),
                 as_json: bool = AS_JSON):
    """A smaller variant of an exported model, written only if it passes its accuracy gate."""
    from rnnedge.deploy.optimize import optimize, summary

    report = optimize(model, out, int8=int8, fp16=fp16, ort_format=ort_format,
                      numba_int8=numba_int8, force=force, data_dir=data_dir, limit=limit,
                      inputs=inputs, data=data, seed=seed)
    if as_json:
        emit_json("optimize", report)
    else:
        typer.echo(summary(report))

"""The models the benchmark suite times: trained or fresh per-cell models, exports, variants.

Fresh weights come from PyTorch's initialisation (timing depends on shapes only); gated
variants go through ``rnnedge optimize`` and its accuracy gates on real data, ungated ones
(random weights: a gate would mean nothing) through the same builders. Not here: timing them
(``suite.py``), the report (``report.py``).
"""

from dataclasses import asdict
from pathlib import Path


def fresh_checkpoint(base, out, seed=0, **changes):
    """A checkpoint like ``base`` (vocabulary, config) with weights fresh from initialisation."""
    import torch

    from rnnedge.train import checkpoint as ckpt_io

    ckpt = ckpt_io.load(base)
    config = {**ckpt["config"], **changes}
    torch.manual_seed(seed)
    if ckpt["task"] == "charlm":
        from rnnedge.train.charlm import CharLM, CharLMConfig

        model = CharLM(CharLMConfig(**config))
    else:
        from rnnedge.train.config import SentimentConfig
        from rnnedge.train.sentiment_model import SentimentModel

        model = SentimentModel(SentimentConfig(**config))
    payload = {"task": ckpt["task"], "config": asdict(model.config), "vocab": ckpt["vocab"],
               "model": model.state_dict(), "epoch": 0, "metrics": {}}
    return ckpt_io.save(out, payload)


def exported(checkpoint, out):
    """``out``, exported from ``checkpoint`` unless it exists already."""
    from rnnedge.export.exporter import export

    if not Path(out).exists():
        export(checkpoint, out)
    return Path(out)


def cell_model(task, cell, base, cells_dir, work):
    """(checkpoint, onnx, "trained" | "random") of ``task`` with ``cell``."""
    trained = Path(cells_dir) / f"{task}-{cell}" / "best.pt" if cells_dir else None
    if trained is not None and trained.exists():
        return trained, exported(trained, work / f"{task}-{cell}.onnx"), "trained"
    ckpt = fresh_checkpoint(base, work / f"{task}-{cell}-random.pt", cell=cell)
    return ckpt, exported(ckpt, work / f"{task}-{cell}-random.onnx"), "random"


def make_variants(key, model, work, gate_reviews, data_dir, names=("int8", "fp16")):
    """Gated variants of ``model`` as ``work/KEY.NAME.onnx``: {name: path}, and each report.

    The charlm gates read the whole Hamlet validation text, the sentiment gates a stride of
    ``gate_reviews`` IMDb test reviews. A variant that fails its gate (or cannot be made) is
    reported with ``written`` false and its ``error``.

    ``numba-int8`` is gated like the others, but its file is the fp32 graph for the fast-int8
    engine (already among the engines), so it is reported and not added to the paths.
    """
    from rnnedge.deploy.optimize import optimize
    from rnnedge.runtime.errors import GateError, UnsupportedError

    paths, reports = {}, {}
    for name in names:
        out = work / f"{key}.{name}.onnx"
        try:
            report = optimize(model, out, int8=name == "int8", fp16=name == "fp16",
                              numba_int8=name == "numba-int8", data_dir=data_dir,
                              limit=gate_reviews if key == "sentiment" else None)
        except (GateError, UnsupportedError) as exc:
            reports[name] = {"written": False, "error": str(exc)}
            continue
        if name != "numba-int8":
            paths[name] = out
        reports[name] = {"written": True, **{k: report[k] for k in
                                             ("out_bytes", "gate", "fp32_weight_nodes", "settings")}}
    return paths, reports


def timing_variants(model, work):
    """Ungated int8 and fp16 variants of a model with random weights: for timing only."""
    import onnx

    from rnnedge.deploy.variants import fp16_weights, quantize_int8, set_props
    from rnnedge.runtime.files import read_onnx

    paths = {}
    for name, convert in (("int8", quantize_int8), ("fp16", fp16_weights)):
        variant, _ = convert(read_onnx(model))
        set_props(variant, {"rnnedge.variant": name})
        paths[name] = work / f"{Path(model).stem}.{name}.onnx"
        onnx.save(variant, paths[name])
    return paths

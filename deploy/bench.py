"""``rnnedge bench``: latency and throughput of the engines side by side, parity checked first.

Every engine runs in the same process and the same run, in interleaved rounds, and the
report gives ratios of each engine's median to onnxruntime's and to the hardware floor
(plain numpy matrix-vector products over the same weights), since single timings on a
shared machine mean little. The runtime engines are ``ort``, ``numba`` (the reference
interpreter), ``fast`` and ``fast-int8``; variant files written by ``rnnedge optimize`` join
as ``ort-int8``, ``ort-fp16``, ... An engine that cannot run the model (``UnsupportedError``:
a fast engine on an int8 file) is left out and named in the report's ``skipped``.

This module is the command's entry, by the file's task; the workloads are
``bench_charlm.py`` and ``bench_sentiment.py``, the timers ``timing.py``, the engines and
their tolerances ``makers.py``.
"""

from .bench_charlm import bench_charlm, markdown
from .bench_sentiment import bench_sentiment, markdown_sentiment


def bench(model_path, torch_maker=None, steps=500, warmup=50, threads=1, cases=128, data_dir=None,
          variants=()):
    """What ``rnnedge bench`` reports: (report, markdown) for the file's task.

    charlm: streaming latency per character; sentiment: throughput on ``cases`` IMDb test
    reviews; any other file: latency per call of every engine that runs it (``bench_generic``). ``torch_maker`` (``rnnedge.export.torch_engines.maker``) adds PyTorch eager.
    """
    from rnnedge.runtime.errors import InputError

    from rnnedge.runtime.model import file_kind

    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 0), ("threads", threads, 1),
                             ("cases", cases, 1)):
        if value < low:
            raise InputError(f"--{name} must be >= {low}, not {value}")
    extra = {"torch": torch_maker} if torch_maker else {}
    task = file_kind(model_path)
    if task not in ("charlm", "sentiment"):
        from .bench_generic import bench_generic, markdown_generic

        report = bench_generic(model_path, steps=steps, warmup=warmup, threads=threads)
        return report, markdown_generic(report)
    if task == "charlm":
        report = bench_charlm(model_path, extra, steps=steps, warmup=warmup, threads=threads,
                              variants=variants)
        return report, markdown(report)
    from rnnedge.data.imdb import load_imdb

    texts = [r.text for r in load_imdb("test", data_dir)[::max(1, 25000 // cases)][:cases]]
    report = bench_sentiment(model_path, texts, extra, variants=variants)
    return report, markdown_sentiment(report)

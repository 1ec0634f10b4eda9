"""PyTorch eager as an engine beside the runtime ones, for ``verify`` and ``bench``.

The deploy commands are torch-free; the command line builds these from a checkpoint and
hands them in: ``*_maker`` for bench (step functions), ``reference`` for verify
(``feeds -> outputs`` with the graph's names).
"""

import numpy as np


def charlm_maker(checkpoint):
    """``make(batch=1, threads=1) -> step(ids (B,)) -> logits (B, V)`` for PyTorch eager."""
    import torch

    from rnnedge.train import checkpoint as ckpt_io
    from rnnedge.train.charlm import build_model

    model = build_model(ckpt_io.load(checkpoint, "charlm"))

    def make(batch=1, threads=1):
        torch.set_num_threads(threads)
        state = [model.init_state(batch)]
        x = torch.zeros((batch, 1), dtype=torch.int64)

        @torch.inference_mode()
        def step(ids):
            x[:, 0] = torch.from_numpy(np.asarray(ids, np.int64))
            logits, state[0] = model(x, state[0])
            return logits[:, -1].numpy()
        return step
    return make


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def sentiment_maker(checkpoint):
    """``make(threads) -> run(tokens, lengths) -> probs`` for PyTorch eager."""
    import torch

    from rnnedge.train import checkpoint as ckpt_io
    from rnnedge.train.sentiment import build_model

    model = build_model(ckpt_io.load(checkpoint, "sentiment"))

    def make(threads):
        def run(tokens, lengths):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                logit = model(torch.from_numpy(tokens), torch.from_numpy(lengths))
            return torch.sigmoid(logit).numpy()
        return run
    return make


def reference(checkpoint, task=None):
    """``run(feeds) -> {output: array}`` of the checkpoint's PyTorch model, as the ONNX graph names them.

    ``task``: the task the checkpoint must hold (that of the model it is compared with).
    """
    from rnnedge.train import checkpoint as ckpt_io

    if task == "user":
        from rnnedge.runtime.errors import InputError

        raise InputError("the file is your own model's export, not an rnnedge checkpoint's, so a "
                         "--checkpoint cannot run beside it; its golden bundle holds PyTorch's "
                         "outputs, which verify checks without one")
    return reference_of(ckpt_io.load(checkpoint, task))


def reference_of(ckpt):
    """``reference`` of a loaded checkpoint (the exporter's golden bundle runs it too)."""
    from .validate import torch_charlm, torch_sentiment

    if ckpt["task"] == "series":
        return series_reference(ckpt)
    if ckpt["task"] == "charlm":
        from rnnedge.train.charlm import build_model

        model = build_model(ckpt)
        return lambda feeds: torch_charlm(model, feeds)
    from rnnedge.train.sentiment import build_model

    model = build_model(ckpt)
    return lambda feeds: torch_sentiment(model, feeds)


def series_reference(ckpt):
    """``run(feeds) -> {"logits", "probs"}`` of a series checkpoint on raw frames and lengths."""
    import torch

    from rnnedge.train.series_model import build_normalised

    model = build_normalised(ckpt)

    def run(feeds):
        with torch.no_grad():
            logits, probs = model(torch.from_numpy(feeds["frames"]),
                                  torch.from_numpy(feeds["lengths"]))
        return {"logits": logits.numpy(), "probs": probs.numpy()}
    return run


def maker(checkpoint, task=None):
    """PyTorch eager for ``deploy.bench``: ``charlm_maker`` or ``sentiment_maker`` by the checkpoint's task.

    ``task``: the task the checkpoint must hold (that of the model it is timed beside).
    """
    from rnnedge.train import checkpoint as ckpt_io

    task = ckpt_io.load(checkpoint, task)["task"]
    if task not in ("charlm", "sentiment"):
        from rnnedge.runtime.errors import InputError

        raise InputError(f"bench times PyTorch eager beside charlm and sentiment models; "
                         f"bench a {task} model without --checkpoint (verify --checkpoint checks "
                         f"it against PyTorch)")
    return (charlm_maker if task == "charlm" else sentiment_maker)(checkpoint)

"""Bad input, as a hostile but fair user gives it: each case ends in the exact typed outcome.

Command-line cases must print one line on stderr and exit 2 (bad input) without a
traceback; API cases must raise the named error class with the named message. Nothing
may be silently wrong: a result that would mean nothing is refused or marked.
"""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import rnnedge.runtime as rt
from rnnedge.runtime.errors import InputError, ModelFileError

CLI = [sys.executable, "-m", "rnnedge.cli"]


def cli(*args, stdin=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, input=stdin)


def one_line_error(done, message, code=2):
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("rnnedge: error:")]
    assert len(lines) == 1 and message in lines[0], done.stderr


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=float("nan")), "temperature must be a finite number > 0"),
    (dict(temperature=float("inf")), "temperature must be a finite number > 0"),
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(temperature="hot"), "temperature must be a finite number > 0"),
    (dict(length=None), "length must be an integer >= 0, not None"),
    (dict(length=-1), "length must be an integer >= 0"),
    (dict(length=2.5), "length must be an integer >= 0"),
    (dict(top_k=0), "top_k must be an integer >= 1 or None"),
    (dict(top_k=True), "top_k must be an integer >= 1 or None"),
])
def test_sampling_settings_that_mean_nothing_are_refused(charlm, kwargs, message):
    with pytest.raises(InputError, match=message):
        rt.load(charlm[1]).generate("The ", **{"length": 5, **kwargs})


def test_generate_streams_each_character_and_a_long_prompt_in_chunks(charlm):
    from rnnedge.runtime import charlm as module

    model = rt.load(charlm[1])
    prompt = "The King, the Queen and Hamlet. " * 400  # 12,800 characters: 4 chunks
    chars = model.sample_chars(prompt, 30, seed=3)
    first = next(chars)  # one character at a time
    assert len(first) == 1 and len(first + "".join(chars)) == 30
    whole = model.sample_chars(prompt, 30, seed=3, chunk=len(prompt))
    chunked = model.sample_chars(prompt, 30, seed=3, chunk=module.PROMPT_CHUNK)
    assert "".join(whole) == "".join(chunked)


@pytest.mark.parametrize("tokens, lengths, message", [
    (np.array([[2.0, 3.0]]), np.array([2]), "tokens must be integers, not float64"),
    (np.array([[2, 3]]), np.array([2.0]), "lengths must be integers"),
    (np.array([[2, 3]]), np.array([3]), "lengths must lie in \\[1, 2\\]"),
    (np.array([[2, 3]]), np.array([0]), "lengths must lie in \\[1, 2\\]"),
    (np.array([[2, -3]]), np.array([2]), "token ids must lie in"),
    (np.array([[2, 10**9]]), np.array([2]), "token ids must lie in"),
    (np.array([2, 3]), np.array([2]), "tokens must be \\(batch, time\\)"),
    (np.array([[2, 3]]), np.array([2, 2]), "tokens must be \\(batch, time\\)"),
])
def test_the_classifier_api_refuses_bad_tokens_and_lengths(sentiment, tokens, lengths, message):
    with pytest.raises(InputError, match=message):
        rt.load(sentiment[1]).run(tokens, lengths)


@pytest.mark.parametrize("engine", ["fast", "fast-int8"])
@pytest.mark.parametrize("tokens, lengths, message", [
    (np.array([[2, 3]]), np.array([3]), "lengths\\[0\\] is 3; lengths must lie in \\[1, 2\\]"),
    (np.array([[2, 3], [2, 3]]), np.array([2, 0]), "lengths\\[1\\] is 0"),
    (np.array([[2, -3]]), np.array([2]), "token id -3 at \\(0, 1\\) is outside the embedding"),
    (np.array([[2, 10**9]]), np.array([2]), "token id 1000000000 at \\(0, 1\\)"),
])
def test_the_fast_classifiers_refuse_the_same_in_their_kernel(sentiment, engine, tokens, lengths,
                                                              message):
    model = rt.load(sentiment[1], engine=engine)
    assert model.engine_checks  # the ranges are the kernel's to check
    with pytest.raises(InputError, match=message):
        model.run(tokens, lengths)


def test_nan_states_and_float_token_ids_are_refused_by_the_char_model(charlm):
    model = rt.load(charlm[1])
    state = model.zero_state(1)
    state["h0"][:] = np.nan
    with pytest.raises(InputError, match="NaN"):
        model.run(np.array([[1, 2]]), state)
    with pytest.raises(InputError, match="integer ids"):
        model.run(np.array([[1.0, 2.0]]))


def test_a_review_of_no_known_word_is_marked(sentiment):
    done = cli("classify", sentiment[1], "😀😀 zqxjv", "A wonderful, moving film.", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["results"]
    assert rows[0]["known_words"] == 0 and rows[1]["known_words"] >= 3
    text = cli("classify", sentiment[1], "😀😀 zqxjv").stdout
    assert "no known word" in text


def test_a_vocabulary_that_disagrees_with_the_graph_is_refused(charlm, tmp_path):
    proto = onnx.load(str(charlm[1]))
    props = {p.key: p for p in proto.metadata_props}
    vocab = json.loads(props["rnnedge.vocab"].value)
    props["rnnedge.vocab"].value = json.dumps(vocab[:-1])
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    for engine in ("ort", "numba"):
        with pytest.raises(ModelFileError, match="vocabulary has .* but the graph's logits have"):
            rt.load(bad, engine=engine)


@pytest.mark.parametrize("args, message", [
    (["evaluate", "{sentiment}", "--limit", "-5"], "limit must be >= 1, not -5"),
    (["evaluate", "{charlm}"], "is a charlm model; this command needs a sentiment model"),
    (["bench", "{charlm}", "--steps", "0"], "--steps must be >= 1, not 0"),
    (["bench", "{charlm}", "--threads", "0"], "--threads must be >= 1, not 0"),
    (["classify", "{sentiment}", "--file", "{empty}"], "holds no review"),
    (["classify", "{sentiment}", "--file", "{dir}"], "is a directory"),
    (["info", "{dir}"], "is a directory, not a file"),
    (["generate", "{charlm}", "--temperature", "nan"], "temperature must be a finite number"),
    (["generate", "{charlm}", "--temperature", "inf"], "temperature must be a finite number"),
    (["generate", "{charlm}", "--length", "-3"], "length must be an integer >= 0"),
    (["generate", "{sentiment}"], "is a sentiment model; this command needs a charlm model"),
    (["verify", "{charlm}", "--checkpoint", "{sentiment_ckpt}"], "is a 'sentiment' checkpoint, expected 'charlm'"),
])
def test_cli_bad_inputs_are_one_line_errors(charlm, sentiment, tmp_path, args, message):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    fill = dict(charlm=charlm[1], sentiment=sentiment[1], sentiment_ckpt=sentiment[0], empty=empty,
                dir=tmp_path)
    one_line_error(cli(*[a.format(**fill) for a in args]), message)


# -- the bad-input matrix: every command in-process, exact class of outcome and message --------

from rnnedge.runtime.errors import (CheckpointError, DataError, GateError, OutputError,  # noqa: E402
                                    ParityError, RnnedgeError, UnsupportedError)

USER_MODULE = '''
import torch
from torch import nn


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


def build():
    torch.manual_seed(0)
    return Forecaster()


def not_a_module():
    return 3
'''


@pytest.fixture(scope="module")
def files(charlm, sentiment, tmp_path_factory):
    """Hostile files, made once: empty, truncated, wrong type, a directory, a user module."""
    d = tmp_path_factory.mktemp("hostile")
    (d / "empty.onnx").write_bytes(b"")
    (d / "empty.pt").write_bytes(b"")
    data = charlm[1].read_bytes()
    (d / "half.onnx").write_bytes(data[:len(data) // 2])
    (d / "text.txt").write_text("not a model\n")
    (d / "dir").mkdir()
    (d / "afile").write_text("x")
    (d / "user.py").write_text(USER_MODULE)
    (d / "meta.json").write_text("{not json")
    (d / "reviews.bin").write_bytes(b"\x00\x01\x02 binary")
    (d / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (d / "bad.csv").write_text("text,label\nfine film,maybe\n")
    return d


def run_cli(*args):
    """(exit code, stderr) of ``rnnedge ARGS`` run in this process; any other exception escapes."""
    import contextlib
    import io

    from rnnedge.cli import app, run_app

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            run_app(app, [str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue()


def assert_one_line(code, stderr, message, want=2):
    assert code == want, (code, stderr)
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("rnnedge: error:")]
    assert len(lines) == 1, stderr
    assert message in lines[0], stderr
    rest = stderr.split(lines[0], 1)[1]
    assert not rest.strip() or "rnnedge: error" not in rest, stderr


UI = "--input", "x:float32[batch,time,3]", "--output", "y"
TINY = ("--epochs", "1", "--hidden-size", "8", "--embed-dim", "4", "--num-layers", "1")
MATRIX = [
    # generate
    (["generate", "{charlm}", "--engine", "numbaa"], "engine must be one of ort, numba, fast, fast-int8, not 'numbaa'"),
    (["generate", "{charlm}", "--engine", "ORT"], "engine must be one of"),
    (["generate", "{charlm}", "--threads", "-1"], "threads must be an integer from 1 to 256"),
    (["generate", "{charlm}", "--threads", "100000"], "threads must be an integer from 1 to 256"),
    (["generate", "{charlm}", "--prompt", ""], "the prompt is empty"),
    (["generate", "{charlm}", "--prompt", "日本語 🎭"], "characters not in the model's vocabulary"),
    (["generate", "{charlm}", "--top-k", "-1"], "top_k must be an integer >= 1 or None, not -1"),
    (["generate", "{charlm}", "--temperature", "-1"], "temperature must be a finite number > 0"),
    (["generate", "{charlm}", "--temperature", "0"], "temperature must be a finite number > 0"),
    (["generate", "{files}/empty.onnx"], "is empty (0 bytes)"),
    (["generate", "{files}/half.onnx"], "the file is damaged or cut short"),
    (["generate", "{charlm_ckpt}"], "it is a zip archive, as a torch checkpoint is"),
    (["generate", "{files}/text.txt"], "is not an ONNX model"),
    (["generate", "{files}/dir"], "is a directory, not a file"),
    (["generate", "{files}/missing.onnx"], "does not exist"),
    (["generate", "{charlm}", "--engine", "fast", "--threads", "0"], "threads must be an integer"),
    # classify
    (["classify", "{sentiment}", ""], "review 0 is empty"),
    (["classify", "{sentiment}", "   <br />  "], "review 0 is empty"),
    (["classify", "{sentiment}", "good", "--batch-size", "0"], "batch size must be >= 1, not 0"),
    (["classify", "{sentiment}", "good", "--batch-size", "-5"], "batch size must be >= 1"),
    (["classify", "{charlm}", "good"], "is a charlm model; this command needs a sentiment model"),
    (["classify", "{sentiment}", "--file", "{files}/missing.txt"], "does not exist"),
    (["classify", "{sentiment}", "--file", "{files}/reviews.bin"], "is not a text file"),
    (["classify", "{sentiment}", "--file", "{files}/latin1.txt"], "is not UTF-8 text"),
    (["classify", "{sentiment}", "good", "--engine", "tflite"], "engine must be one of"),
    (["classify", "{sentiment_ckpt}", "good"], "it is a zip archive"),
    # info
    (["info", "{files}/empty.onnx"], "is empty (0 bytes)"),
    (["info", "{files}/half.onnx"], "the file is damaged or cut short"),
    (["info", "{charlm_ckpt}"], "it is a zip archive, as a torch checkpoint is"),
    (["info", "{files}/missing.onnx"], "does not exist"),
    # verify
    (["verify", "{charlm}", "--checkpoint", "{files}/dir"], "is a directory, not a file"),
    (["verify", "{charlm}", "--checkpoint", "{charlm}"], "it is an ONNX file, not a checkpoint"),
    (["verify", "{charlm}", "--checkpoint", "{files}/empty.pt"], "is empty (0 bytes)"),
    (["verify", "{charlm}", "--checkpoint", "{files}/missing.pt"], "does not exist"),
    (["verify", "{sentiment}", "--checkpoint", "{charlm_ckpt}"], "is a 'charlm' checkpoint, expected 'sentiment'"),
    (["verify", "{charlm_ckpt}"], "it is a zip archive"),
    (["verify", "{files}/dir"], "is a directory, not a file"),
    # bench
    (["bench", "{charlm}", "--warmup", "-1"], "--warmup must be >= 0, not -1"),
    (["bench", "{sentiment}", "--cases", "0"], "--cases must be >= 1, not 0"),
    (["bench", "{charlm}", "--steps", "-7"], "--steps must be >= 1, not -7"),
    (["bench", "{charlm}", "--threads", "-3"], "--threads must be >= 1, not -3"),
    (["bench", "{charlm}", "--steps", "2", "--warmup", "0", "--variant", "{files}/dir"], "is a directory, not a file"),
    (["bench", "{charlm}", "--steps", "2", "--warmup", "0", "--checkpoint", "{sentiment_ckpt}"],
     "is a 'sentiment' checkpoint, expected 'charlm'"),
    (["bench", "{files}/half.onnx"], "the file is damaged or cut short"),
    # evaluate
    (["evaluate", "{sentiment}", "--split", "dev"], "IMDb split must be 'train' or 'test', not 'dev'"),
    (["evaluate", "{sentiment}", "--data", "{files}/dir"], "is a directory"),
    (["evaluate", "{sentiment}", "--data", "{files}/text.txt"], "unknown file type '.txt'"),
    (["evaluate", "{sentiment}", "--data", "{files}/bad.csv"], "label"),
    (["evaluate", "{sentiment}", "--limit", "5", "--batch-size", "0"], "batch size must be >= 1, not 0"),
    (["evaluate", "{sentiment}", "--limit", "5", "--engine", "foo"], "engine must be one of"),
    (["evaluate", "{sentiment}", "--limit", "5", "--threads", "0"], "threads must be an integer from 1"),
    (["evaluate", "{sentiment}", "--limit", "0"], "limit must be >= 1, not 0"),
    # export: checkpoints
    (["export", "{charlm_ckpt}", "--out", "{files}/dir"], "is a directory; give the ONNX file to write"),
    (["export", "{charlm_ckpt}", "--out", "{files}/afile/m.onnx"], "a part of the path is a file"),
    (["export", "{charlm}", "--out", "{files}/x.onnx"], "it is an ONNX file, not a checkpoint"),
    (["export", "{files}/dir", "--out", "{files}/x.onnx"], "is a directory, not a file"),
    (["export", "{files}/empty.pt", "--out", "{files}/x.onnx"], "is empty (0 bytes)"),
    (["export", "{files}/text.txt", "--out", "{files}/x.onnx"], "is not a readable torch checkpoint"),
    (["export", "{charlm_ckpt}", "--out", "{charlm_ckpt}"], "is the checkpoint being exported"),
    (["export", "--out", "{files}/x.onnx"], "give either a CHECKPOINT or --model"),
    # export: the user's module
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/dir", *UI], "is a directory"),
    (["export", "--model", "{files}/user.py:nope", "--out", "{files}/x.onnx", *UI], "has no callable 'nope'"),
    (["export", "--model", "{files}/user.py:not_a_module", "--out", "{files}/x.onnx", *UI], "returned int, not a torch.nn.Module"),
    (["export", "--model", "{files}/dir:build", "--out", "{files}/x.onnx", *UI], "is a directory"),
    (["export", "--model", "{files}/missing.py:build", "--out", "{files}/x.onnx", *UI], "does not exist"),
    (["export", "--model", "{files}/user.py", "--out", "{files}/x.onnx", *UI], "must read path/to/file.py:factory"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx", "--input",
      "x:float33[batch,time,3]", "--output", "y"], "unknown dtype 'float33'"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx", "--input",
      "x[batch,time,3]", "--output", "y"], "must read name:dtype[dim,...]"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx"], "needs at least one --input"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx", *UI, "--weights",
      "{charlm}"], "is not a state_dict torch.load can read safely"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx", *UI, "--weights",
      "{files}/dir"], "is a directory"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx", *UI, "--weights",
      "{charlm_ckpt}"], "does not fit the module"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx", *UI, "--metadata",
      "{files}/meta.json"], "not a readable JSON file"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx", *UI, "--exporter",
      "tflite"], "exporter must be auto"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/x.onnx", *UI, "--state",
      "h"], "must read input=output"),
    (["export", "--model", "{files}/user.py:build", "--out", "{files}/user.py", *UI], "one of the files the export reads"),
    # optimize
    (["optimize", "{charlm}", "--out", "{files}/dir", "--int8"], "is a directory; give the file to write"),
    (["optimize", "{charlm}", "--out", "{files}/v.onnx"], "nothing to do"),
    (["optimize", "{charlm}", "--out", "{files}/v.onnx", "--int8", "--fp16"], "exclude each other"),
    (["optimize", "{charlm}", "--out", "{files}/v.onnx", "--int8", "--limit", "0"], "limit must be >= 1, not 0"),
    (["optimize", "{charlm}", "--out", "{charlm}", "--int8"], "is the source model"),
    (["optimize", "{charlm}", "--out", "{files}/v.onnx", "--ort-format"], "must end in .ort"),
    (["optimize", "{charlm_ckpt}", "--out", "{files}/v.onnx", "--int8"], "it is a zip archive"),
    (["optimize", "{files}/dir", "--out", "{files}/v.onnx", "--int8"], "is a directory, not a file"),
    # train charlm
    (["train", "charlm", "--out", "{files}/afile", *TINY], "is a file; a training run writes a folder"),
    (["train", "charlm", "--out", "{tmp}/t", "--lr", "nan"], "lr must be a number in (0, 10], not nan"),
    (["train", "charlm", "--out", "{tmp}/t", "--lr", "inf"], "lr must be a number in (0, 10]"),
    (["train", "charlm", "--out", "{tmp}/t", "--lr", "-1"], "lr must be a number in (0, 10]"),
    (["train", "charlm", "--out", "{tmp}/t", "--epochs", "0"], "epochs must be >= 1, not 0"),
    (["train", "charlm", "--out", "{tmp}/t", "--hidden-size", "0"], "must be >= 1"),
    (["train", "charlm", "--out", "{tmp}/t", "--cell", "lstn"], "cell must be one of lstm, gru, rnn, not 'lstn'"),
    (["train", "charlm", "--out", "{tmp}/t", "--text", "{files}/dir"], "text file"),
    (["train", "charlm", "--out", "{tmp}/t", "--text", "{files}/empty.onnx"], "holds 0 characters"),
    (["train", "charlm", "--out", "{tmp}/t", "--text", "{charlm}"], "holds a NUL byte at byte offset"),
    (["train", "charlm", "--out", "{tmp}/t", "--config", "{files}/dir"], "is a directory"),
    (["train", "charlm", "--out", "{tmp}/t", "--resume", "{sentiment_ckpt}"], "is a 'sentiment' checkpoint, expected 'charlm'"),
    (["train", "charlm", "--out", "{tmp}/t", "--device", "tpu"], "--device must be auto, cpu or cuda"),
    (["train", "charlm", "--out", "{tmp}/t", "--threads", "0"], "--threads must be >= 1, not 0"),
    # train sentiment
    (["train", "sentiment", "--out", "{files}/afile"], "is a file; a training run writes a folder"),
    (["train", "sentiment", "--out", "{tmp}/t", "--data", "{files}/dir"], "is a directory"),
    (["train", "sentiment", "--out", "{tmp}/t", "--data", "{files}/text.txt"], "unknown file type '.txt'"),
    (["train", "sentiment", "--out", "{tmp}/t", "--lr", "nan"], "lr must be a number in (0, 10], not nan"),
    (["train", "sentiment", "--out", "{tmp}/t", "--batch-size", "0"], "batch_size must be >= 1, not 0"),
    (["train", "sentiment", "--out", "{tmp}/t", "--head", "foo"], "head must be one of last, mean, max"),
    (["train", "sentiment", "--out", "{tmp}/t", "--resume", "{charlm_ckpt}"], "is a 'charlm' checkpoint, expected 'sentiment'"),
    # diagnose gradients
    (["diagnose", "gradients", "--out", "{files}/afile", "--steps", "5"], "is a file; the diagnostic writes a folder"),
    (["diagnose", "gradients", "--out", "{tmp}/g", "--steps", "0"], "--steps and --windows must be >= 1"),
    (["diagnose", "gradients", "--out", "{tmp}/g", "--windows", "0"], "--steps and --windows must be >= 1"),
    (["diagnose", "gradients", "--out", "{tmp}/g", "--steps", "10000000"], "is longer than the validation text"),
    (["diagnose", "gradients", "--out", "{tmp}/g", "--hidden-size", "-8"], "must be >= 1"),
    (["diagnose", "gradients", "--out", "{tmp}/g", "--checkpoint", "{sentiment_ckpt}", "--steps", "5",
      "--windows", "1", "--hidden-size", "4"], "is a 'sentiment' checkpoint, expected 'charlm'"),
]


@pytest.mark.parametrize("args, message", MATRIX, ids=[" ".join(a[:3]) for a, _ in MATRIX])
def test_the_bad_input_matrix_of_every_command(charlm, sentiment, files, tmp_path, args, message):
    fill = dict(charlm=charlm[1], charlm_ckpt=charlm[0], sentiment=sentiment[1],
                sentiment_ckpt=sentiment[0], files=files, tmp=tmp_path)
    assert_one_line(*run_cli(*[a.format(**fill) for a in args]), message)
    assert not (tmp_path / "t").exists() and not (tmp_path / "g").exists()  # nothing half-made


# -- the Python API -----------------------------------------------------------------------------

def test_the_api_refuses_what_the_commands_refuse(charlm, sentiment, user_corpus, files, tmp_path):
    from rnnedge.deploy.bench import bench
    from rnnedge.deploy.evaluate import reviews_to_score
    from rnnedge.deploy.optimize import optimize
    from rnnedge.deploy.verify import verify
    from rnnedge.export import export_model
    from user_models import PASSING

    char, senti = rt.load(charlm[1]), rt.load(sentiment[1])
    module, example, kwargs = PASSING["lstm_forecaster"]()
    graph = rt.load(user_corpus["streaming_kws_gru"][1])
    cases = [
        (lambda: char.generate("The ", length=None), InputError, "length must be an integer >= 0, not None"),
        (lambda: char.run(np.array([[1, 2]]), {"h0": np.zeros((2, 1, 32), np.float64)}), InputError, "state lacks c0"),
        (lambda: char.run(np.array([[1, 2]]), {"h0": np.zeros((2, 1, 7)), "c0": np.zeros((2, 1, 7))}),
         InputError, "h0 has shape (2, 1, 7), expected (2, 1, 32)"),
        (lambda: char.run(np.zeros((1, 0), np.int64)), InputError, "time >= 1"),
        (lambda: char.stream().step("日本"), InputError, "characters not in the model's vocabulary"),
        (lambda: senti.run(np.array([[2, 3]]), np.array([[2]])), InputError, "tokens must be (batch, time)"),
        (lambda: senti.run(np.array([[2, 3]]), np.array([np.nan])), InputError, "lengths must be integers"),
        (lambda: senti.classify(["good"], batch_size=0), InputError, "batch size must be >= 1"),
        (lambda: senti.predict([""]), InputError, "review 0 is empty"),
        (lambda: graph.run([1, 2]), InputError, "feeds must be a dict"),
        (lambda: graph.run({"mels": np.zeros((1, 2, 10), np.float32)}), InputError, "feeds lack h"),
        (lambda: graph.stream().step({"mels": np.zeros((1, 2, 10)), "h": np.zeros((1, 1, 16))}),
         InputError, "are carried by the stream"),
        (lambda: graph.run({"mels": np.full((1, 2, 10), 1e300), "h": np.zeros((1, 1, 16))}),
         InputError, "values beyond float32's range"),
        (lambda: rt.load(charlm[1], threads=0), InputError, "threads must be an integer from 1"),
        (lambda: rt.load(charlm[1], threads=2.5), InputError, "threads must be an integer from 1"),
        (lambda: rt.load(files / "dir"), ModelFileError, "is a directory, not a file"),
        (lambda: rt.load(files / "empty.onnx", engine="numba"), ModelFileError, "is empty (0 bytes)"),
        (lambda: rt.load(charlm[0]), ModelFileError, "it is a zip archive"),
        (lambda: export_model(module, example, files / "dir", **kwargs), InputError, "is a directory"),
        (lambda: optimize(charlm[1], files / "dir", int8=True), InputError, "is a directory"),
        (lambda: verify(files / "dir"), ModelFileError, "is a directory, not a file"),
        (lambda: bench(charlm[1], steps=0), InputError, "--steps must be >= 1, not 0"),
        (lambda: reviews_to_score(limit=0), InputError, "limit must be >= 1, not 0"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as caught:
            call()
        assert message in str(caught.value), (message, caught.value)


def tamper_config(src, dst, **changes):
    proto = onnx.load(str(src))
    props = {p.key: p for p in proto.metadata_props}
    config = json.loads(props["rnnedge.config"].value)
    props["rnnedge.config"].value = json.dumps({**config, **changes})
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("changes, message", [
    (dict(hidden_size=64), "hidden_size 64 but the graph"),
    (dict(num_layers=3), "num_layers 3 but the graph"),
    (dict(cell="gru"), "cell 'gru' but the graph"),
])
@pytest.mark.parametrize("engine", ["ort", "numba", "fast"])
def test_a_metadata_config_that_disagrees_with_the_graph_is_refused(charlm, tmp_path, changes,
                                                                    message, engine):
    bad = tamper_config(charlm[1], tmp_path / "bad.onnx", **changes)
    with pytest.raises(ModelFileError, match="altered after export") as caught:
        rt.load(bad, engine=engine).generate("The ", length=3)
    assert message in str(caught.value)


def test_info_refuses_a_sentiment_config_that_disagrees_with_the_graph(sentiment, tmp_path):
    bad = tamper_config(sentiment[1], tmp_path / "bad.onnx", hidden_size=64)
    assert_one_line(*run_cli("info", bad), "hidden_size 64 but the graph has 16")
    with pytest.raises(ModelFileError, match="altered after export"):
        rt.load(bad, engine="numba")


# -- files that cannot be written: a full disk, a read-only folder -------------------------------

def no_space(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_fails_export_with_a_typed_error_and_no_half_file(charlm, tmp_path, monkeypatch):
    """The disk fills at fsync, after the bytes went to the temp file: it must be removed."""
    from rnnedge.export.exporter import export

    monkeypatch.setattr("os.fsync", no_space)
    with pytest.raises(OutputError, match="the disk is full"):
        export(charlm[0], tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_fails_optimize_with_a_typed_error_and_no_half_file(charlm, tmp_path, monkeypatch):
    """onnx.save writes half the variant, then the disk is full."""
    from rnnedge.deploy import variants
    from rnnedge.deploy.optimize import optimize

    def half_then_full(model, path, *args):
        open(path, "wb").write(b"half")
        no_space()

    monkeypatch.setattr(variants, "save", half_then_full)
    with pytest.raises(OutputError, match="cannot write .*v.onnx: the disk is full"):
        optimize(charlm[1], tmp_path / "v.onnx", int8=True, limit=200)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_stops_training_with_a_typed_error_and_no_half_checkpoint(tmp_path, monkeypatch):
    from rnnedge.train.charlm import train_charlm

    text = tmp_path / "corpus.txt"
    text.write_text("To be, or not to be, that is the question. " * 100)
    monkeypatch.setattr("os.fsync", no_space)
    with pytest.raises(OutputError, match="the disk is full"):
        train_charlm(tmp_path / "run", text=text, echo=None, epochs=1, hidden_size=8, embed_dim=4,
                     num_layers=1, batch_size=4, num_steps=20, device="cpu")
    left = [p.name for p in (tmp_path / "run").iterdir()] if (tmp_path / "run").exists() else []
    assert not [n for n in left if n.endswith((".pt", ".tmp", ".next"))], left


def test_a_read_only_folder_fails_writes_with_a_typed_error(charlm, tmp_path, monkeypatch):
    """As root chmod does not stop a write, so the kernel's EROFS is raised where files are made."""
    import errno
    import tempfile

    from rnnedge.export.exporter import export
    from rnnedge.train.diagnose import report

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match="the file system is read-only: write elsewhere"):
        export(charlm[0], tmp_path / "m.onnx")
    with pytest.raises(OutputError, match="gradients.json: the file system is read-only"):
        report({"lstm init": np.ones(3)}, tmp_path / "g")
    assert [p.name for p in tmp_path.iterdir()] in ([], ["g"])
    assert not list((tmp_path / "g").iterdir()) if (tmp_path / "g").exists() else True


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 16 KiB tmpfs (a full disk for any model), or skip where mounting is not allowed."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode:
        pytest.skip("cannot mount a tmpfs here; the monkeypatched full-disk tests cover it")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_really_full_disk_gives_one_line_errors_and_no_half_files(charlm, tiny_tmpfs):
    one_line_error(cli("export", charlm[0], "--out", tiny_tmpfs / "m.onnx"), "the disk is full")
    one_line_error(cli("optimize", charlm[1], "--out", tiny_tmpfs / "v.onnx", "--fp16", "--limit", "200"),
                   "the disk is full")
    assert list(tiny_tmpfs.iterdir()) == []


def test_an_unforeseen_os_error_is_still_one_line_and_exit_2(capsys):
    import errno

    import typer

    from rnnedge.cli.app import run_app

    app = typer.Typer()

    @app.command()
    def write():
        raise OSError(errno.EIO, "Input/output error", "/dev/broken")

    with pytest.raises(SystemExit) as ended:
        run_app(app, [])
    assert ended.value.code == 2
    assert capsys.readouterr().err == "rnnedge: error: Input/output error (/dev/broken)\n"

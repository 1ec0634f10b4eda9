"""Hostile but realistic inputs to the data readers, checkpoints and ``diagnose``: each is read
as what it is or refused with one typed error naming the file (and line, case, byte or
tensor), before any work, and nothing is left half-written. Needs no data set, except Hamlet
for one diagnose test (skipped without it)."""

import errno
import tracemalloc
from dataclasses import asdict

import numpy as np
import pytest
import torch

from rnnedge.data import ts_format
from rnnedge.data.imdb import load_labeled_file
from rnnedge.data.series import load_series, split_stratified
from rnnedge.runtime.errors import CheckpointError, DataError, OutputError
from rnnedge.train import checkpoint
from rnnedge.train.config import CharLMConfig, SentimentConfig, SeriesConfig

TS = "@problemName p\n@univariate true\n@classLabel true {labels}\n@data\n"  # 4 header lines
CSV = "id,t,x,label\n1,0,0.5,a\n1,1,0.25,a\n2,0,1.5,b\n"


def write(path, data):
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def truncated(path):
    np.savez(path, X=np.random.default_rng(0).random((20, 30, 2)), y=np.arange(20) % 2)
    data = path.read_bytes()
    return write(path, data[:len(data) // 2])


def bad_crc(path):
    """A compressed archive with one flipped byte inside X's deflated data."""
    np.savez_compressed(path, X=np.random.default_rng(0).random((20, 30, 2)), y=np.arange(20) % 2)
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    return write(path, bytes(data))


def npy_named_npz(path):
    np.save(path.with_suffix(".npy"), np.zeros((2, 3, 1)))
    return path.with_suffix(".npy").rename(path)


LATIN1_TS = (TS.format(labels="caf\xe9 tea") + "1,2:caf\xe9\n").encode("latin-1")
BAD_FILES = [  # (file name, make(path), the exact part of the message after the path)
    ("inf.ts", lambda p: write(p, TS.format(labels="a b") + "1,2:a\n3,1e39,4:b\n"),
     ", line 6, dimension 1, value 2: '1e39' is not finite in float32 (|x| at most 3.403e+38), "
     "as the model reads it"),
    ("inf.csv", lambda p: write(p, CSV.replace("0.25", "1e39")),
     ", line 3, value 1: '1e39' is not finite in float32 (|x| at most 3.403e+38), as the model "
     "reads it"),
    ("inf.npz", lambda p: npz(p, X=np.array([[[1.0], [2.0]], [[3.0], [1e39]]]), y=np.array([0, 1])),
     ": case 2, frame 2, channel 1 is not finite in float32 (|x| at most 3.403e+38)"),
    ("dup.ts", lambda p: write(p, TS.format(labels="a b a") + "1,2:a\n1,2:b\n"),
     ", line 3: @classLabel lists 'a' twice; class names must be distinct"),
    ("dup.npz", lambda p: npz(p, X=np.zeros((2, 3, 1)), y=np.array([0, 1]),
                              classes=np.array(["a", "a"])),
     ": class names must be distinct, printable and not empty; got 'a', 'a'"),
    ("latin1.ts", lambda p: write(p, LATIN1_TS),
     ": not UTF-8 text at byte offset 52 (line 3: byte 0xe9); save it as UTF-8"),
    ("latin1.csv", lambda p: write(p, CSV.replace(",b", ",caf\xe9").encode("latin-1")),
     ": not UTF-8 text at byte offset 45 (line 4: byte 0xe9); save it as UTF-8"),
    ("utf16.ts", lambda p: write(p, (TS.format(labels="a b") + "1:a\n").encode("utf-16")),
     " is UTF-16; save it as UTF-8"),
    ("utf16.csv", lambda p: write(p, CSV.encode("utf-16")), " is UTF-16; save it as UTF-8"),
    ("utf16le.csv", lambda p: write(p, CSV.encode("utf-16-le")), " is UTF-16; save it as UTF-8"),
    ("binary.csv", lambda p: write(p, b"id,t,x\n1,0,\x00\x01\n"),
     " holds a NUL byte at byte offset 11: it is not text; save it as UTF-8 text"),
    ("zero.ts", lambda p: write(p, TS.format(labels="a b")), " holds no cases"),
    ("zero.csv", lambda p: write(p, "id,t,x,label\n"), " holds no cases"),
    ("zero.npz", lambda p: npz(p, X=np.zeros((0, 3, 1)), y=np.zeros(0, np.int64)),
     " holds no cases"),
    ("floatlen.npz", lambda p: npz(p, X=np.zeros((2, 3, 1)), lengths=np.array([1.0, 2.0])),
     ": lengths must be (cases,) integers in [1, 3]"),
    ("array.npz", npy_named_npz, " holds one array (an .npy file?), not an .npz archive of X, "
                                 "lengths and y; save it with np.savez"),
    ("empty.npz", lambda p: write(p, b""), " is not a readable .npz without pickled objects "
                                           "(EOFError: No data left in file)"),
    ("truncated.npz", truncated, " is not a readable .npz without pickled objects "
                                 "(BadZipFile: File is not a zip file)"),
    ("crc.npz", bad_crc, " is not a readable .npz without pickled objects"),
    ("nochannel.npz", lambda p: npz(p, X=np.zeros((2, 3, 0)), y=np.array([0, 1])),
     ": X has no channels (shape (2, 3, 0)); it needs at least one"),
    ("nan_t.csv", lambda p: write(p, CSV.replace("1,1,", "1,nan,")),
     ", line 3: t 'nan' is not a finite number"),
]


@pytest.mark.parametrize("name, make, message", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_hostile_series_file_is_one_data_error_naming_it(tmp_path, name, make, message):
    path = make(tmp_path / name)
    with pytest.raises(DataError) as caught:
        load_series(path)
    text = str(caught.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


@pytest.mark.parametrize("name, data", [
    ("excel.ts", "\ufeff" + TS.format(labels="caf\xe9 b") + "1,2:caf\xe9\n3,4:b\n"),
    ("excel.csv", "\ufeff" + CSV.replace(",b", ",caf\xe9")),
])
def test_utf8_with_a_byte_order_mark_is_read(tmp_path, name, data):
    series = load_series(write(tmp_path / name, data.encode("utf-8")))
    assert "caf\xe9" in series.classes and len(series.X) == 2


@pytest.mark.parametrize("data, message", [
    ("text,label\nCaf\xe9 ok,1\n".encode("latin-1"),
     ": not UTF-8 text at byte offset 14 (line 2: byte 0xe9); save it as UTF-8"),
    ("text,label\nfine,1\n".encode("utf-16"), " is UTF-16; save it as UTF-8"),
])
def test_the_labeled_review_reader_refuses_the_same_encodings(tmp_path, data, message):
    path = write(tmp_path / "reviews.csv", data)
    with pytest.raises(DataError) as caught:
        load_labeled_file(path)
    assert str(caught.value) == f"{path}{message}"


def test_the_labeled_review_reader_takes_excels_csv_utf8(tmp_path):
    path = write(tmp_path / "reviews.csv", "\ufefftext,label\nTr\xe8s bon,pos\n".encode("utf-8"))
    assert [(r.text, r.label) for r in load_labeled_file(path)] == [("Tr\xe8s bon", 1)]


def long_case(path, values):
    """A .ts file whose first case is ``values`` on one line (as %.6f), then a short one."""
    body = ",".join(f"{v:.6f}" for v in values)
    return write(path, TS.format(labels="a b") + body + ":a\n1,2:b\n")


def test_a_long_case_costs_a_small_multiple_of_its_text(tmp_path):
    values = np.random.default_rng(0).standard_normal(400_000)
    path = long_case(tmp_path / "long.ts", values)  # about 4 MB on one line
    tracemalloc.start()
    try:
        series = load_series(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * path.stat().st_size, (peak, path.stat().st_size)  # it was 13x
    np.testing.assert_allclose(series.X[0][:, 0], values.astype(np.float32), atol=1e-6)


@pytest.mark.parametrize("name, make, where", [
    ("long.ts", lambda p: long_case(p, np.zeros(1001)), ", line 5: the case holds 1,001 values"),
    ("long.csv", lambda p: write(p, "id,t,x,y\n" + "".join(f"1,{t},0,0\n" for t in range(501))),
     ", line 502, case '1': the case holds 1,002 values"),
    ("long.npz", lambda p: npz(p, X=np.zeros((2, 501, 2)), y=np.array([0, 1])),
     ", each case: the case holds 1,002 values"),
])
def test_a_case_above_the_limit_is_refused_naming_the_limit(tmp_path, monkeypatch, name, make,
                                                            where):
    monkeypatch.setattr(ts_format, "MAX_CASE_VALUES", 1000)
    path = make(tmp_path / name)
    with pytest.raises(DataError) as caught:
        load_series(path)
    assert str(caught.value) == (f"{path}{where}, more than the limit of 1,000 per case "
                                 f"(rnnedge.data.ts_format.MAX_CASE_VALUES); cut it into "
                                 f"shorter cases")


def test_values_parsed_in_chunks_keep_their_numbers_and_missing_values(tmp_path, monkeypatch):
    monkeypatch.setattr(ts_format, "CHUNK", 8)  # many chunks, cut at commas
    tokens = ["1.5", "?", "", "-2", "NaN", "3e2", "4", " 5 ", "6.25", "7"]
    x = ts_format.parse_channel(",".join(tokens), "f, line 1")
    want = np.float32([1.5, np.nan, np.nan, -2, np.nan, 300, 4, 5, 6.25, 7])
    np.testing.assert_array_equal(x, want)
    with pytest.raises(DataError, match=r"^f, line 1, value 9: '1e39' is not finite in float32"):
        ts_format.parse_channel(",".join(tokens[:8] + ["1e39"]), "f, line 1")
    with pytest.raises(DataError, match=r"^f, line 1, value 10: 'x7' is not a number$"):
        ts_format.parse_channel(",".join(tokens[:9] + ["x7"]), "f, line 1")


def test_one_case_per_class_is_refused_before_training_and_says_why():
    with pytest.raises(DataError) as caught:
        split_stratified(np.array([0, 1, 2]), 0.2, where="the training data t.ts")
    assert str(caught.value) == (
        "the training data t.ts: the validation split would be empty: 3 cases for 3 classes, and "
        "no class has 2 or more cases, so none can be held out for validation (early stopping "
        "needs it); give at least 2 cases of each class")


def frames(path, n, channels, classes=("a", "b")):
    rng = np.random.default_rng(n)
    return npz(path, X=rng.random((n, 5, channels)), y=np.array(classes * n)[:n])


@pytest.mark.parametrize("test, message", [
    (lambda d: frames(d / "test.npz", 6, 10), "the test data {test} has 10 channels, the "
                                              "training data 12; give test cases with the "
                                              "training data's channels"),
    (lambda d: frames(d / "test.npz", 6, 12, ("a", "c")),
     "the test data {test} has class(es) c that the model does not know (it knows a, b)"),
    (lambda d: npz(d / "test.npz", X=np.zeros((2, 5, 12))),
     "the test data {test} has no class labels; evaluation needs labelled cases"),
])
def test_a_test_file_that_cannot_be_scored_is_refused_before_training(tmp_path, test, message):
    from rnnedge.train.series import train_series

    train, test = frames(tmp_path / "train.npz", 12, 12), test(tmp_path)
    with pytest.raises(DataError) as caught:
        train_series(tmp_path / "run", data=train, test=test, epochs=1, hidden_size=4, threads=1,
                     echo=lambda *a: None)
    assert str(caught.value) == message.format(test=test)
    assert not (tmp_path / "run").exists()  # refused before any epoch: no best.pt


def test_training_on_one_case_per_class_stops_before_the_first_epoch(tmp_path):
    from rnnedge.train.series import train_series

    data = frames(tmp_path / "two.npz", 2, 3)
    with pytest.raises(DataError, match="the validation split would be empty: 2 cases for 2 "):
        train_series(tmp_path / "run", data=data, epochs=1, hidden_size=4, threads=1,
                     echo=lambda *a: None)
    assert not (tmp_path / "run").exists()


# -- checkpoints: the config's size and shapes against the stored tensors -------------------------

def series_checkpoint(path, **changes):
    """A checkpoint of a tiny series classifier, its config then altered by ``changes``."""
    from rnnedge.train.series_model import SeriesNet

    config = SeriesConfig(channels=3, num_classes=2, hidden_size=4)
    model = SeriesNet(config)
    payload = {"task": "series", "config": {**asdict(config), **changes}, "vocab": ["a", "b"],
               "model": model.state_dict(), "epoch": 1, "metrics": {},
               "norm": {"mean": [0.0] * 3, "std": [1.0] * 3}}
    path.write_bytes(checkpoint.to_bytes(payload))
    return path


@pytest.mark.parametrize("cell, bidirectional, layers", [("lstm", False, 1), ("gru", True, 3),
                                                         ("rnn", True, 2)])
def test_the_counted_layout_is_what_torch_builds(cell, bidirectional, layers):
    from rnnedge.train.charlm import CharLM
    from rnnedge.train.sentiment_model import SentimentModel
    from rnnedge.train.series_model import SeriesNet

    common = dict(hidden_size=7, num_layers=layers, cell=cell)
    for task, config, model in [
            ("charlm", CharLMConfig(vocab_size=11, embed_dim=5, **common), CharLM),
            ("sentiment", SentimentConfig(vocab_size=13, embed_dim=5, bidirectional=bidirectional,
                                          **common), SentimentModel),
            ("series", SeriesConfig(channels=3, num_classes=4, bidirectional=bidirectional,
                                    **common), SeriesNet)]:
        state = model(config).state_dict()
        sizes = checkpoint.layout("x", {"task": task, "config": asdict(config)})
        assert checkpoint.shapes_of(sizes) == {k: tuple(v.shape) for k, v in state.items()}
        assert checkpoint.size_of(sizes) == (sum(v.numel() for v in state.values()), len(state))


@pytest.mark.parametrize("changes, message", [
    (dict(hidden_size=4096, num_layers=64),
     "its config asks for 6,393,737,218 parameters in 258 tensors (more than the limit of "
     "2,000,000,000), its model holds 118 in 6; the config or the weights were altered after "
     "rnnedge wrote it"),
    (dict(hidden_size=1, num_layers=10**9),
     "its config asks for 12,000,000,010 parameters in 4,000,000,002 tensors (more than the "
     "limit of 2,000,000,000), its model holds 118 in 6"),
    (dict(num_layers=2), "its config asks for 238 parameters in 10 tensors, its model holds 118 "
                         "in 6"),
    (dict(hidden_size=5), "tensor rnn.weight_ih_l0 of its model is of shape (12, 3), the config "
                          "asks for floats of shape (15, 3) (its config asks for 162 parameters "
                          "in 6 tensors, its model holds 118 in 6)"),
    (dict(cell="xyz"), "its config is not a valid series config (cell must be one of lstm, gru, "
                       "rnn, not 'xyz')"),
    (dict(hidden_size="4"), "its config is not a valid series config"),
    (dict(extra=1), "its config is not a valid series config (SeriesConfig.__init__() got an "
                    "unexpected keyword argument 'extra')"),
])
def test_a_checkpoint_whose_config_disagrees_with_its_tensors_is_refused(tmp_path, changes,
                                                                         message):
    path = series_checkpoint(tmp_path / "bad.pt", **changes)
    with pytest.raises(CheckpointError) as caught:
        checkpoint.load(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path):
    path = series_checkpoint(tmp_path / "ok.pt")
    ckpt = checkpoint.load(path)
    ckpt["model"]["rnn.weight_hh_l0"] = torch.zeros(4, 12)  # its transpose: the same count
    path.write_bytes(checkpoint.to_bytes(ckpt))
    with pytest.raises(CheckpointError) as caught:
        checkpoint.load(path)
    assert str(caught.value) == (
        f"{path}: tensor rnn.weight_hh_l0 of its model is of shape (4, 12), the config asks for "
        f"floats of shape (12, 4) (its config asks for 118 parameters in 6 tensors, its model "
        f"holds 118 in 6); the config or the weights were altered after rnnedge wrote it")


def test_export_resume_and_diagnose_refuse_it_before_building_a_model(tmp_path, monkeypatch):
    from rnnedge.export.exporter import export
    from rnnedge.train import diagnose, series_model
    from rnnedge.train.series import train_series

    bad = series_checkpoint(tmp_path / "big.pt", hidden_size=4096, num_layers=64)
    charlm = tmp_path / "charlm.pt"
    ckpt = checkpoint.load(series_checkpoint(tmp_path / "ok.pt"))
    config = asdict(CharLMConfig(vocab_size=3, embed_dim=2, hidden_size=4096, num_layers=64))
    charlm.write_bytes(checkpoint.to_bytes({**ckpt, "task": "charlm", "config": config}))

    def never(*args, **kwargs):
        raise AssertionError("a model was built from the bad checkpoint")
    monkeypatch.setattr(series_model.SeriesNet, "__init__", never)
    monkeypatch.setattr(diagnose, "mean_curve", never)
    with pytest.raises(CheckpointError, match="6,393,737,218 parameters"):
        export(bad, tmp_path / "m.onnx")
    with pytest.raises(CheckpointError, match="6,393,737,218 parameters"):
        train_series(tmp_path / "run", data=frames(tmp_path / "d.npz", 12, 3), resume=bad,
                     threads=1, echo=lambda *a: None)
    with pytest.raises(CheckpointError, match="parameters in 259 tensors"):
        diagnose.charlm_curves([charlm], steps=5, windows=1, data_dir=tmp_path / "no-data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pt", "charlm.pt", "d.npz", "ok.pt"]


def test_diagnose_refuses_a_char_model_of_another_text_before_any_curve(tmp_path, monkeypatch,
                                                                        data_dir):
    from rnnedge.train import diagnose
    from rnnedge.train.charlm import CharLM

    config = CharLMConfig(vocab_size=3, embed_dim=2, hidden_size=4, num_layers=1)
    path = tmp_path / "run" / "abc.pt"
    path.parent.mkdir()
    path.write_bytes(checkpoint.to_bytes({
        "task": "charlm", "config": asdict(config), "vocab": list("abc"),
        "model": CharLM(config).state_dict(), "epoch": 1, "metrics": {}}))
    monkeypatch.setattr(diagnose, "mean_curve", None)  # a curve would be a TypeError
    with pytest.raises(CheckpointError) as caught:
        diagnose.charlm_curves([path], steps=5, windows=1, data_dir=data_dir)
    assert str(caught.value) == (f"{path} was trained on another text (its characters are not "
                                 f"Hamlet's); the diagnostic runs on Hamlet windows")


# -- diagnose writes its JSON and PNG both or neither ---------------------------------------------

def full_disk_at(nth):
    """An ``os.fsync`` that raises ENOSPC on its ``nth`` call (1: the JSON's, 2: the PNG's)."""
    import os

    calls, real = [], os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == nth:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    return fsync


CURVES = {"rnn init": 0.5 ** np.arange(20), "lstm init": 0.9 ** np.arange(20)}


@pytest.mark.parametrize("nth, name", [(1, "gradients.json"), (2, "gradients.png")])
def test_a_full_disk_fails_diagnose_naming_the_file_and_writes_neither(tmp_path, monkeypatch, nth,
                                                                       name):
    from rnnedge.train.diagnose import report

    out = tmp_path / "diag"
    monkeypatch.setattr("os.fsync", full_disk_at(nth))
    with pytest.raises(OutputError) as caught:
        report(CURVES, out)
    assert str(caught.value) == (f"cannot write {out / name}: the disk is full: free space or "
                                 f"write elsewhere; nothing was written there")
    assert list(tmp_path.iterdir()) == []  # the folder it made is gone again, temps and locks too


def test_a_full_disk_keeps_the_previous_report_whole(tmp_path, monkeypatch):
    from rnnedge.train.diagnose import report

    report(CURVES, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"gradients.json", "gradients.png"}
    monkeypatch.setattr("os.fsync", full_disk_at(2))
    with pytest.raises(OutputError, match="gradients.png: the disk is full"):
        report({"gru init": 0.7 ** np.arange(20)}, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_diagnose_command_refuses_a_bad_checkpoint_at_once(tmp_path):
    """One line, exit 2, before the Hamlet text is even looked for."""
    import contextlib
    import io

    from rnnedge.cli import app, run_app

    bad = write(tmp_path / "bad.pt", b"not a checkpoint")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as done:
        run_app(app, ["diagnose", "gradients", "--checkpoint", str(bad), "--out",
                      str(tmp_path / "d"), "--data-dir", str(tmp_path / "no-data")])
    assert done.value.code == 2 and "Traceback" not in err.getvalue()
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rnnedge: error: {bad} is not a readable "
                                                   f"torch checkpoint")
    assert not (tmp_path / "d").exists()


def test_a_training_text_takes_the_readers_rule(tmp_path):
    """``train charlm --text``: a UTF-8 BOM (as Notepad and Excel write) is dropped and
    Windows newlines read as newlines, so neither joins the vocabulary; latin-1 is refused
    naming the byte, as every other reader does."""
    from rnnedge.data.hamlet import load_text

    text = tmp_path / "bom.txt"
    text.write_bytes(b"\xef\xbb\xbf" + b"To be, or not to be, that is the question.\r\n" * 5)
    corpus = load_text(text)
    assert corpus.startswith("To be") and "\ufeff" not in corpus and "\r" not in corpus
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 " + b"abcd " * 30)
    with pytest.raises(DataError, match=r"not UTF-8 text at byte offset 3 \(line 1: byte 0xe9\)"):
        load_text(latin)

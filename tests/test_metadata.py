"""One file schema for every kind: the keys every export writes, and the one parser that reads
them (``runtime/metadata.py``), which trusts nothing it reads."""

import json

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st

from rnnedge.runtime.errors import ModelFileError
from rnnedge.runtime.metadata import FORMAT, KINDS, parse, read_metadata

SCHEMA = {"rnnedge.format", "rnnedge.kind", "rnnedge.config", "rnnedge.vocab", "rnnedge.metrics",
          "rnnedge.signature", "rnnedge.states", "rnnedge.lengths", "rnnedge.golden",
          "rnnedge.user", "rnnedge.export", "rnnedge.versions"}
GOOD = {"rnnedge.format": FORMAT, "rnnedge.kind": "user", "rnnedge.config": "{}",
        "rnnedge.states": '{"h": "h_new"}', "rnnedge.lengths": "null",
        "rnnedge.signature": json.dumps({"inputs": [{"name": "x", "dtype": "float32",
                                                     "shape": ["batch", "time", 3]}],
                                         "outputs": []})}


def keys(path):
    return {p.key for p in onnx.load(str(path)).metadata_props if p.key.startswith("rnnedge.")}


def test_every_kind_writes_the_same_schema_with_a_golden_bundle(charlm, sentiment, user_corpus):
    from rnnedge.runtime.golden import from_props

    files = {"charlm": charlm[1], "sentiment": sentiment[1],
             "user": user_corpus["streaming_kws_gru"][1]}
    for kind, path in files.items():
        assert SCHEMA <= keys(path), (kind, SCHEMA - keys(path))
        meta = read_metadata(onnx.load(str(path)), path)
        assert meta.kind == kind and meta.rnnedge and meta.signature is not None
        assert len(from_props(meta.props)) == 3  # PyTorch's outputs at three shapes
    assert read_metadata(onnx.load(str(charlm[1]))).states == {"h0": "hn", "c0": "cn"}
    assert read_metadata(onnx.load(str(sentiment[1]))).lengths == "lengths"


def test_a_file_without_rnnedge_keys_is_a_user_file_with_nothing_declared():
    meta = parse({"producer": "someone"})
    assert meta.kind == "user" and not meta.rnnedge and meta.states is None and meta.config == {}


@pytest.mark.parametrize("key, value, message", [
    ("rnnedge.format", "9", "rnnedge format '9'"),
    ("rnnedge.kind", "robot", "rnnedge.kind is 'robot', not one of"),
    ("rnnedge.kind", "\x1b]0;pwned\x07", "rnnedge.kind is '\\x1b]0;pwned\\x07'"),  # escaped
    ("rnnedge.config", "{not json", "rnnedge.config is not JSON"),
    ("rnnedge.config", "[1, 2]", "rnnedge.config must be a JSON dict, not list"),
    ("rnnedge.states", '{"h": 3}', "rnnedge.states must map input names to output names"),
    ("rnnedge.lengths", "7", "rnnedge.lengths must be a JSON str or null, not int"),
    ("rnnedge.signature", '{"inputs": [{"name": "x"}], "outputs": []}',
     "rnnedge.signature has no readable 'inputs'"),
    ("rnnedge.versions", '"1.0"', "rnnedge.versions must be a JSON dict, not str"),
])
def test_a_malformed_key_is_a_typed_error_naming_it(key, value, message):
    with pytest.raises(ModelFileError, match="altered after export|export it again") as caught:
        parse({**GOOD, key: value}, "m.onnx")
    assert message in str(caught.value) and str(caught.value).startswith("m.onnx")


def test_format_1_files_are_translated():
    series = parse({"rnnedge.format": "1", "rnnedge.task": "generic",
                    "rnnedge.user": json.dumps({"task": "series", "classes": ["a", "b"],
                                                "config": {"channels": 3}, "norm": {}})})
    assert (series.kind, series.vocab, series.config) == ("series", ["a", "b"], {"channels": 3})
    char = parse({"rnnedge.format": "1", "rnnedge.task": "charlm",
                  "rnnedge.config": '{"cell": "gru"}'})
    assert char.kind == "charlm" and char.states == {"h0": "hn"}
    assert parse({"rnnedge.format": "1", "rnnedge.task": "generic"}).kind == "user"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SCHEMA)), st.text(max_size=40), max_size=8),
       st.sampled_from(KINDS))
def test_any_text_in_any_key_is_read_or_refused_with_a_typed_error(props, kind):
    props = {**GOOD, "rnnedge.kind": kind, **props}
    try:
        meta = parse(props, "m.onnx")
    except ModelFileError as exc:
        assert str(exc).startswith("m.onnx") and all(ch.isprintable() for ch in str(exc))
    else:
        assert meta.kind in KINDS and isinstance(meta.config, dict)


def _bomb(unpacked_mb):
    """The base64 text of an .npz archive of one array of zeros that unpacks to that many MB
    (written in chunks: the test itself never holds it)."""
    import base64
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("0/in/x.npy", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(unpacked_mb):
                member.write(chunk)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_a_golden_bundle_that_would_unpack_to_gigabytes_is_refused_before_unpacking():
    import resource
    import time

    from rnnedge.runtime.golden import MAX_BYTES, decode

    text = _bomb(MAX_BYTES // (1 << 20) + 16)  # 80 MB of zeros in about 80 KB
    assert len(text) < 1 << 20
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    with pytest.raises(ModelFileError, match="unpacks to 83,886,080 bytes"):
        decode(text)
    assert time.perf_counter() - start < 5
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 50_000, f"decoding grew the process by {grown_kb} KB"


def test_a_golden_bundle_of_another_graph_is_a_typed_error_in_verify(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from rnnedge.runtime.golden import Case, encode

    golden = Path(__file__).resolve().parent / "golden"
    proto = onnx.load(str(golden / "tiny_kws.onnx"))
    props = {p.key: p for p in proto.metadata_props}
    wrong = Case({"mels": np.zeros((1, 4, 2), np.float32), "h": np.zeros((1, 1, 8), np.float32)},
                 {"scores": np.zeros((1, 4, 3), np.float32), "h_new": np.zeros((1, 1, 8),
                                                                               np.float32)})
    props["rnnedge.golden"].value = encode([wrong])
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "verify", str(tmp_path / "bad.onnx")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "golden case 0 input mels is float32 (1, 4, 2)" in done.stderr


"""Export: native recurrent operators, dynamic axes, metadata, parity, atomic failure."""

import json

import numpy as np
import onnx
import pytest
import torch

from rnnedge.export import exporter
from rnnedge.runtime.errors import ParityError
from rnnedge.runtime.engines import OrtEngine


def test_graph_uses_native_lstm_nodes_with_dynamic_batch_and_time(charlm):
    model = onnx.load(str(charlm[1]))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("LSTM") == 2 and not {"Loop", "Scan"} & set(ops)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*model.graph.input, *model.graph.output]}
    assert dims == {"tokens": ["batch", "time"], "h0": [2, "batch", 32],
                    "c0": [2, "batch", 32], "logits": ["batch", "time", 65],
                    "hn": [2, "batch", 32], "cn": [2, "batch", 32]}


def test_metadata_makes_the_file_self_describing(charlm):
    from rnnedge.runtime.files import sha256

    props = {p.key: p.value for p in onnx.load(str(charlm[1])).metadata_props}
    ckpt = torch.load(charlm[0], weights_only=True)
    assert props["rnnedge.format"] == "2" and props["rnnedge.kind"] == "charlm"
    assert json.loads(props["rnnedge.config"]) == ckpt["config"]
    assert json.loads(props["rnnedge.vocab"]) == ckpt["vocab"]
    assert json.loads(props["rnnedge.metrics"])["val_nats"] == ckpt["metrics"]["val_nats"]
    assert props["rnnedge.checkpoint_sha256"] == sha256(charlm[0])
    versions = json.loads(props["rnnedge.versions"])
    assert versions["torch"] == torch.__version__ and versions["onnx"] == onnx.__version__
    assert versions["exporter"].startswith("rnnedge ")


def test_one_file_runs_a_streaming_step_and_a_long_prompt_at_any_batch(charlm):
    engine = OrtEngine(onnx.load(str(charlm[1])))
    for batch, time in [(1, 1), (1, 500), (9, 3)]:
        feeds = {"tokens": np.zeros((batch, time), np.int64),
                 "h0": np.zeros((2, batch, 32), np.float32), "c0": np.zeros((2, batch, 32), np.float32)}
        out = engine.run(feeds)
        assert out["logits"].shape == (batch, time, 65) and out["cn"].shape == (2, batch, 32)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_export_matches_pytorch_for_every_cell(tmp_path, cell):
    ckpt = _random_checkpoint(cell)
    diffs = exporter.validate(ckpt, exporter.build(ckpt, "0" * 64))
    assert diffs and all(d.ok for d in diffs)
    assert max(d.max_abs for d in diffs) < 1e-4


def test_gru_with_the_wrong_linear_before_reset_is_rejected_and_not_written(tmp_path, charlm_gru):
    out = tmp_path / "wrong.onnx"
    with pytest.raises(ParityError, match="max abs") as err:
        exporter.export(charlm_gru[0], out, linear_before_reset=0)
    worst = float(str(err.value).split("max abs ")[1].split(",")[0])
    assert worst > 1e-3  # a silent error of this size is what the check exists for
    assert list(tmp_path.iterdir()) == []


def _random_checkpoint(cell, vocab=11):
    from dataclasses import asdict

    from rnnedge.train.charlm import CharLM, CharLMConfig

    torch.manual_seed(0)
    config = CharLMConfig(vocab_size=vocab, embed_dim=5, hidden_size=7, num_layers=2, cell=cell,
                          nonlinearity="relu" if cell == "rnn" else "tanh")
    model = CharLM(config)
    return {"task": "charlm", "config": asdict(config), "vocab": [chr(97 + i) for i in range(vocab)],
            "model": model.state_dict(), "epoch": 0, "metrics": {}}


def test_validation_reports_a_missing_and_an_extra_output_beside_the_values():
    from rnnedge.export.validate import validate_charlm
    from rnnedge.runtime.parity import failure_report
    from rnnedge.train.charlm import build_model

    ckpt = _random_checkpoint("lstm")
    engine = OrtEngine(exporter.build(ckpt, "0" * 64), threads=1)

    class Renamed:  # a graph that names one output wrongly
        def run(self, feeds):
            out = engine.run(feeds)
            out["c_n"] = out.pop("cn")
            return out

    diffs = validate_charlm(build_model(ckpt), Renamed(), ckpt["config"])
    failed = {(d.name.split()[-1], d.check) for d in diffs if not d.ok}
    assert failed == {("cn", "name"), ("c_n", "name")}
    assert all(d.ok for d in diffs if d.name.split()[-1] in ("logits", "hn"))
    report = failure_report("export", diffs)
    assert report.count("missing") == report.count("extra") == 5  # one of each per input shape

"""The ONNX conformance cases for LSTM, GRU and RNN, run through ``run_node`` on both engines.

The cases ship with the installed ``onnx`` package (``onnx.backend.test.case.node``); their
expected outputs come from the ONNX reference implementation.
"""

import warnings

import numpy as np
import pytest

from rnnedge.runtime.reference import run_node
from rnnedge.runtime.tolerances import FP32, assert_close

PREFIXES = ("test_lstm_", "test_gru_", "test_simple_rnn_")


def _recurrent_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # other operators' case generators overflow on purpose
        cases = collect_testcases()
    return {c.name: c for c in cases
            if c.name.startswith(PREFIXES) or c.name == "test_rnn_seq_length"}


CASES = _recurrent_cases()


def test_every_recurrent_case_is_found():
    assert len(CASES) >= 18, sorted(CASES)
    assert sum(name.startswith("test_lstm_") for name in CASES) == 6, sorted(CASES)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_conformance_case(name, engine):
    case = CASES[name]
    graph = case.model.graph
    (node,) = graph.node
    assert case.data_sets, name
    for feeds, expected in case.data_sets:
        by_name = dict(zip([i.name for i in graph.input], feeds))
        outputs = run_node(node, [by_name.get(n) for n in node.input], engine=engine)
        produced = dict(zip(node.output, outputs))
        assert [o.name for o in graph.output] == [n for n in node.output if n]
        for output, value in zip(graph.output, expected):
            assert produced[output.name].dtype == np.float32
            assert_close(f"{name} {output.name}", produced[output.name], value, FP32)

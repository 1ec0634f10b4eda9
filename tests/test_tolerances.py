"""The comparison behind every parity check reports each way two outputs differ, never hides one.

Names both ways, then dtypes, shapes and values, every failure in one report (as optimum's
``validate_model_outputs``); tolerances chosen by precision, not by an engine's name. numpy only.
"""

import math

import numpy as np
import pytest

from rnnedge.runtime.errors import ParityError, UnsupportedError
from rnnedge.runtime.parity import compare_outputs, failure_report
from rnnedge.runtime.tolerances import FP16, FP32, INT8, assert_close, compare, level

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((3, 5, 7)).astype(np.float32)  # (B, T, V)
HN = RNG.standard_normal((2, 3, 4)).astype(np.float32)  # (L, B, H)


def outputs(**changes):
    return {"logits": LOGITS.copy(), "hn": HN.copy(), **changes}


def test_equal_outputs_pass():
    diffs = compare_outputs("same", outputs(), outputs())
    assert [d.ok for d in diffs] == [True, True] and failure_report("same", diffs) == ""
    assert all(d.check == "" and d.message == "" for d in diffs)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64])
def test_a_wrong_dtype_fails_even_with_equal_values(dtype):
    (diff,) = [d for d in compare_outputs("x", outputs(hn=HN.astype(dtype)), outputs())
               if d.name.endswith("hn")]
    assert not diff.ok and diff.check == "dtype"
    assert f"dtype {np.dtype(dtype)}, expected float32" in diff.message
    assert not compare("hn", HN.astype(np.float64), HN, FP32).ok


def test_a_float64_reference_takes_any_float_but_not_integers():
    assert compare("wider", LOGITS, LOGITS.astype(np.float64)).ok
    assert not compare("ints", LOGITS.astype(np.int32), LOGITS.astype(np.float64)).ok
    assert not compare("strict", LOGITS, LOGITS.astype(np.float64), dtype=np.float64).ok


def test_a_missing_output_fails():
    actual = outputs()
    del actual["hn"]
    failed = [d for d in compare_outputs("x", actual, outputs()) if not d.ok]
    assert [(d.name, d.check) for d in failed] == [("x hn", "name")]
    assert "missing" in failed[0].message and math.isnan(failed[0].max_abs)


def test_an_extra_output_fails():
    failed = [d for d in compare_outputs("x", outputs(cn=HN), outputs()) if not d.ok]
    assert [(d.name, d.check) for d in failed] == [("x cn", "name")]
    assert "extra" in failed[0].message


def test_a_shape_mismatch_is_reported_not_raised():
    diff = compare("logits", LOGITS[:, :4], LOGITS)
    assert not diff.ok and diff.check == "shape" and math.isnan(diff.max_abs)
    assert "shape (3, 4, 7), expected (3, 5, 7)" in diff.message and "shape" in str(diff)


def test_values_beyond_atol_plus_rtol_fail_at_the_right_index():
    expected = np.full((4, 6), 10.0, np.float32)
    actual = expected.copy()
    limit = FP32.atol + FP32.rtol * 10.0
    actual[1, 2] += 0.9 * limit  # inside
    actual[2, 4] += 3 * limit  # outside
    diff = compare("v", actual, expected, FP32)
    assert not diff.ok and diff.check == "value" and diff.where == (2, 4)
    assert diff.max_abs == pytest.approx(3 * limit, rel=1e-3)
    assert "1 of 24 value(s) beyond the tolerance" in diff.message
    actual[2, 4] = expected[2, 4]
    assert compare("v", actual, expected, FP32).ok


def test_the_relative_part_scales_with_expected():
    expected = np.array([1000.0, 1.0], np.float32)
    assert compare("big", expected + np.float32(0.05), expected, FP32).ok is False
    assert compare("big", expected + np.array([0.05, 0], np.float32), expected, FP32).ok


def test_nan_in_actual_fails_where_it_is():
    actual = LOGITS.copy()
    actual[2, 1, 3] = np.nan
    diff = compare("nan", actual, LOGITS, INT8)
    assert not diff.ok and diff.check == "value" and diff.where == (2, 1, 3)
    assert "NaN or inf" in diff.message


def test_every_failure_appears_in_one_report():
    bad = LOGITS.copy()
    bad[0, 0, 0] += 1.0
    actual = {"logits": bad, "hn": HN[:1], "extra": HN}
    expected = {"logits": LOGITS, "hn": HN, "cn": HN}
    diffs = compare_outputs("B=3", actual, expected)
    failed = {d.name: d.check for d in diffs if not d.ok}
    assert failed == {"B=3 cn": "name", "B=3 extra": "name", "B=3 hn": "shape",
                      "B=3 logits": "value"}
    report = failure_report("export", diffs)
    assert report.startswith("export: 4 of 4 comparisons failed, max abs diff 1")
    for name in failed:
        assert name in report
    with pytest.raises(ParityError, match="max abs 1"):
        assert_close("logits", bad, LOGITS)


def test_dtype_and_value_failures_of_one_output_are_both_reported():
    diff = compare("both", (LOGITS + 1).astype(np.float64), LOGITS, FP32, dtype=np.float32)
    assert diff.check == "dtype" and "dtype float64" in diff.message
    assert "beyond the tolerance" in diff.message and diff.max_abs == pytest.approx(1.0)


def test_as_dict_keeps_its_keys_and_adds_why_on_failure():
    keys = {"name", "max_abs", "max_rel", "where", "ok", "tolerance"}
    assert set(compare("ok", LOGITS, LOGITS).as_dict()) == keys
    assert set(compare("bad", LOGITS[:1], LOGITS).as_dict()) == keys | {"check", "message"}


def test_levels_are_chosen_by_precision():
    assert (level("fp32"), level("fp16"), level("int8")) == (FP32, FP16, INT8)
    with pytest.raises(UnsupportedError, match="fp32, fp16, int8"):
        level("bf16")


def test_bench_engines_get_their_precision_from_a_table_and_variant_metadata():
    from rnnedge.deploy.makers import tolerance
    from rnnedge.deploy.variants import precision

    assert tolerance("fast-int8") == INT8 and tolerance("fast") == FP32
    assert tolerance("my-int8-engine") == FP32  # a name is not a precision
    assert tolerance("ort-x", {"ort-x": "fp16"}) == FP16
    assert [precision(v) for v in ("int8", "int8+ort", "fp16", "numba-int8", "ort")] == [
        "int8", "int8", "fp16", "fp32", "fp32"]

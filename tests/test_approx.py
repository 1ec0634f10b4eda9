"""The fused kernels' own arithmetic: the vectorisable e^x and the AVX2 int8 dot product.

``common.exp_approx`` (Cephes' expf) against float64 e^x, and the activations built on it;
``fused_layer.idot`` on int8 inputs (``int8_simd.dot32`` plus the loop for the tail) and
``matvec8`` against exact integer products. No torch, no data.
"""

import numpy as np
import pytest
from numba import njit

from rnnedge.runtime.ops.common import SIGMOID, TANH, activate, exp_approx
from rnnedge.runtime.ops.fused_layer import idot, idot_loop, matvec8, quantize_rows


@njit(cache=False)
def _apply(code, x, out):
    for k in range(x.size):
        out[k] = exp_approx(x[k]) if code < 0 else activate(code, x[k], True)
    return out


@njit(cache=False)
def _idots(A, q, lo, hi, out):
    for r in range(A.shape[0]):
        out[r] = idot(A, r, q, lo, hi)
    return out


def test_exp_approx_is_within_one_ulp_where_it_does_not_clamp():
    x = np.linspace(-87, 87, 2_000_001, dtype=np.float32)
    out = _apply(-1, x, np.empty_like(x))
    exact = np.exp(x.astype(np.float64))
    ulps = np.abs(out - exact) / np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 1.0, f"max {ulps.max():.2f} ulp at x = {x[ulps.argmax()]}"


def test_exp_approx_clamps_and_keeps_nan():
    out = _apply(-1, np.array([np.nan, np.inf, -np.inf, 200, -200], np.float32),
                 np.empty(5, np.float32))
    assert np.isnan(out[0])
    assert out[1] == out[3] == np.float32(np.exp(np.float64(87)))
    assert out[2] == out[4] and 0 < out[2] < 2e-38


@pytest.mark.parametrize("code, exact", [(SIGMOID, lambda v: 1 / (1 + np.exp(-v))),
                                         (TANH, np.tanh)])
def test_approximate_activations_stay_far_inside_the_fp32_tolerance(code, exact):
    x = np.linspace(-100, 100, 2_000_001, dtype=np.float32)
    out = _apply(code, x, np.empty_like(x))
    err = np.abs(out - exact(x.astype(np.float64)))
    assert err.max() < 2e-7, f"max abs error {err.max():.3g} at x = {x[err.argmax()]}"
    assert np.isnan(_apply(code, np.array([np.nan], np.float32), np.empty(1, np.float32))[0])


@pytest.mark.parametrize("lo, hi", [(0, 1), (0, 31), (0, 32), (0, 33), (5, 100), (0, 512),
                                    (256, 512), (7, 7)])
def test_idot_on_int8_inputs_is_exact(lo, hi):
    rng = np.random.default_rng(lo * 1000 + hi)
    A = rng.integers(-127, 128, (9, 512), dtype=np.int8)
    A[0] = 127  # the largest products: pairs of 2 * 127^2 must not saturate
    q = rng.integers(-127, 128, 512, dtype=np.int8)
    q[:64] = -127
    expected = A[:, lo:hi].astype(np.int64) @ q[lo:hi].astype(np.int64)
    assert (_idots(A, q, lo, hi, np.empty(9, np.int32)) == expected).all()
    assert (_idots(A, q.astype(np.int16), lo, hi, np.empty(9, np.int32)) == expected).all()
    assert idot_loop(A, 3, q, lo, hi) == expected[3]


def test_matvec8_is_the_int8_product_with_row_and_input_scales():
    rng = np.random.default_rng(3)
    mats = [rng.standard_normal((40, 70)).astype(np.float32),
            rng.standard_normal((8, 32)).astype(np.float32)]
    As, scales = zip(*(quantize_rows(a) for a in mats))
    xs = tuple(rng.standard_normal(a.shape[1]).astype(np.float32) for a in mats)
    outs = tuple(np.empty(a.shape[0], np.float32) for a in mats)
    matvec8(As, scales, xs, tuple(np.empty(a.shape[1], np.int8) for a in mats), outs)
    for A, scale, x, out, a in zip(As, scales, xs, outs, mats):
        sx = np.abs(x).max() / 127
        q = np.rint(x / sx)
        np.testing.assert_allclose(out, (A.astype(np.float64) @ q) * scale * sx, rtol=1e-5)
        np.testing.assert_allclose(out, a @ x, atol=0.05 * np.abs(a @ x).max())

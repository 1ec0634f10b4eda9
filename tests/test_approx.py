"""The fused kernels' own arithmetic: the vectorisable e^x and the int8 panel products.

``common.exp_approx`` (Cephes' expf) against float64 e^x, and the activations built on it;
``panels.panel_dot`` on int8 inputs (``simd.panel_dot8``: VNNI's or AVX2's, each checked
where the CPU has it; the plain loop on int16 holders), the panel layout and its inverse,
``quantize`` and ``matvec8`` against exact integer products; ``simd.flat``. No torch, no
data.
"""

import numpy as np
import pytest
from numba import njit

from rnnedge.runtime.ops.common import SIGMOID, TANH, activate, exp_approx
from rnnedge.runtime.ops import simd
from rnnedge.runtime.ops.simd import (HAS_AVX2, HAS_VNNI, Q_X, flat, panel_dot8_avx2,
                                      panel_dot8_vnni)
from rnnedge.runtime.ops.panels import (matvec8, pack_rows, panel_dot, panel_dot_f32,
                                        panel_dot_f32_loop, panel_dot_loop, panels, qsum, quads,
                                        quantize, quantize_rows, rows_of, unpanel, width)


@njit(cache=False)
def _apply(code, x, out):
    for k in range(x.size):
        out[k] = exp_approx(x[k]) if code < 0 else activate(code, x[k], True)
    return out


@njit(cache=False)
def _panel_dot(P, q, k0, k1, out):
    panel_dot(P, q, k0, k1, qsum(q, 4 * k0, 4 * k1), out)
    return out


@njit(cache=False)
def _avx2(P, q, k0, k1, out):
    panel_dot8_avx2(P, q, k0, k1, qsum(q, 4 * k0, 4 * k1), out)
    return out


@njit(cache=False)
def _vnni(P, q, k0, k1, out):
    panel_dot8_vnni(P, q, k0, k1, qsum(q, 4 * k0, 4 * k1), out)
    return out


# every int8 product this CPU can run: the dispatched one, and each SIMD path it has
INT8_PATHS = [_panel_dot] + [_avx2] * HAS_AVX2 + [_vnni] * HAS_VNNI


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


@pytest.mark.parametrize("R, K, split", [(1, 1, 1), (32, 32, 32), (33, 70, 3), (70, 512, 256),
                                         (96, 128, 0), (9, 13, 13), (64, 9, 4)])
def test_panels_hold_the_rows_and_their_products_are_exact(R, K, split):
    rng = np.random.default_rng(R * 1000 + K)
    A = rng.integers(-127, 128, (R, K), dtype=np.int8)
    A[0] = 127  # the largest products: pairs of 2 * 255 * 64 must not saturate in int16
    A[-1] = -127
    P = panels(A, split)
    assert P.shape == (-(-R // 32), quads(split) + quads(K - split), 128)
    assert (unpanel(P, R, K, split) == A).all()
    x = rng.standard_normal(K).astype(np.float32)
    x[:min(K, 40)] = np.where(np.arange(min(K, 40)) % 2, 5.0, -5.0)  # q at +-Q_X
    q = np.full(width(split, K), 99, np.int8)  # the padding must be overwritten with zeros
    scale = quantize(x, split, q)
    at = 4 * quads(split)
    dense = np.concatenate([q[:split], q[at:at + K - split]]).astype(np.int64)
    assert np.abs(dense).max() <= Q_X and (dense == np.rint(x / scale)).all()
    assert (np.delete(q, np.r_[0:split, at:at + K - split]) == 0).all()
    rows = 32 * P.shape[0]
    full = np.zeros((R, q.size), np.int64)  # A in the padded column layout
    full[:, np.r_[0:split, at:at + K - split]] = A
    for k0, k1 in [(0, P.shape[1]), (0, quads(split)), (quads(split), P.shape[1]), (1, 1)]:
        expected = full[:, 4 * k0:4 * k1] @ q[4 * k0:4 * k1].astype(np.int64)
        for path in INT8_PATHS:
            got = path(P, q, k0, k1, np.empty(rows, np.int32))[:R]
            assert (got == expected).all(), (path.__name__, k0, k1)
        assert (_panel_dot(P, q.astype(np.int16), k0, k1, np.empty(rows, np.int32))[:R]
                == expected).all()
        loop = np.empty(rows, np.int32)
        panel_dot_loop(P, q, k0, k1, loop)
        assert (loop[:R] == expected).all()


@njit(cache=False)
def _panel_dot_f32(P, x, k0, k1, out):
    panel_dot_f32(P, x, k0, k1, out)
    return out


@pytest.mark.parametrize("R, K", [(1, 1), (32, 7), (33, 70), (1024, 512), (65, 256)])
def test_float32_panels_hold_the_rows_and_sum_them_in_column_order(R, K):
    rng = np.random.default_rng(R + K)
    A = rng.standard_normal((R, K)).astype(np.float32)
    x = rng.standard_normal(K).astype(np.float32)
    P = panels(A, 0)
    assert P.dtype == np.float32 and P.shape == (-(-R // 32), K, 32)
    assert (unpanel(P, R, K, 0) == A).all()
    rows = 32 * P.shape[0]
    for k0, k1 in [(0, K), (0, K // 2), (K // 2, K), (K, K)]:
        exact = A[:, k0:k1].astype(np.float64) @ x[k0:k1].astype(np.float64)
        got = _panel_dot_f32(P, x, k0, k1, np.empty(rows, np.float32))[:R]
        loop = np.empty(rows, np.float32)
        panel_dot_f32_loop(P, x, k0, k1, loop)
        bound = 1e-6 * (np.abs(A[:, k0:k1]) @ np.abs(x[k0:k1]) + 1)  # fp32 sums of K terms
        assert (np.abs(got - exact) <= bound * max(1, K) ** 0.5 * 4).all()
        np.testing.assert_allclose(got, loop[:R], rtol=1e-5, atol=1e-5)  # fma or not


def test_pack_rows_keeps_unit_and_gate_order_and_stacks():
    rng = np.random.default_rng(5)
    M = rng.integers(-127, 128, (2, 3, 5, 4, 24), dtype=np.int8)  # (L, D, H, G, K)
    P = pack_rows(M, 16)
    assert P.shape == (2, 3, 1, 6, 128)
    assert (rows_of(P, 5, 4, 24, 16) == M).all()
    assert (unpanel(P[1, 2], 20, 24, 16) == M[1, 2].reshape(20, 24)).all()
    F = M.astype(np.float32)
    assert pack_rows(F, 16).shape == (2, 3, 1, 24, 32)
    assert (rows_of(pack_rows(F, 16), 5, 4, 24, 16) == F).all()


def test_a_cpu_with_avx2_or_vnni_takes_its_simd_path():
    """The kernels must not fall back to the plain loop (or AVX2) silently where AVX2 (or
    AVX-512 VNNI) is there."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
    except OSError:
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    assert HAS_AVX2 == ("avx2" in flags)
    assert HAS_VNNI == ("avx2" in flags and "avx512_vnni" in flags and "avx512vl" in flags)
    assert simd.panel_dot8 is (panel_dot8_vnni if HAS_VNNI else panel_dot8_avx2)


def test_matvec8_is_the_int8_product_with_row_and_input_scales():
    rng = np.random.default_rng(3)
    mats = [rng.standard_normal((41, 70)).astype(np.float32),
            rng.standard_normal((8, 32)).astype(np.float32)]
    As, scales = zip(*(quantize_rows(a) for a in mats))
    xs = tuple(rng.standard_normal(a.shape[1]).astype(np.float32) for a in mats)
    outs = tuple(np.empty(a.shape[0], np.float32) for a in mats)
    biases = tuple(np.zeros(a.shape[0], np.float32) for a in mats)
    matvec8(tuple(panels(A, A.shape[1]) for A in As), scales, biases, xs,
            tuple(np.zeros(width(a.shape[1], a.shape[1]), np.int8) for a in mats), outs)
    for A, scale, x, out, a in zip(As, scales, xs, outs, mats):
        sx = np.abs(x).max() / Q_X
        q = np.rint(x / sx)
        np.testing.assert_allclose(out, (A.astype(np.float64) @ q) * scale * sx, rtol=1e-5)
        np.testing.assert_allclose(out, a @ x, atol=0.05 * np.abs(a @ x).max())


def test_a_portable_build_takes_the_plain_loop_not_an_intrinsic_it_cannot_emit(tmp_path):
    """NUMBA_CPU_NAME=generic (a cache shared across machines) compiles without AVX2: an
    AVX2 intrinsic there aborts the process in LLVM, so the product must take the loop."""
    import os
    import subprocess
    import sys

    script = ("import numpy as np\n"
              "from rnnedge.runtime.ops.simd import HAS_AVX2, HAS_VNNI\n"
              "from rnnedge.runtime.ops.panels import matvec8, panels, quantize_rows, width\n"
              "A = np.arange(-60, 68, dtype=np.float32).reshape(8, 16)\n"
              "A[:, 0] = 127  # every row's scale 1: its int8 weights are exact\n"
              "W, s = quantize_rows(A)\n"
              "out = np.zeros(8, np.float32)\n"
              "matvec8((panels(W, 16),), (s,), (np.zeros(8, np.float32),),\n"
              "        (np.ones(16, np.float32),), (np.zeros(width(16, 16), np.int8),), (out,))\n"
              "print(HAS_AVX2, HAS_VNNI, np.abs(out - A.sum(axis=1)).max())\n")
    env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("NUMBA_CPU_FEATURES", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    avx2, vnni, err = done.stdout.split()
    assert (avx2, vnni) == ("False", "False")
    assert float(err) < 1e-4  # exact integers, scales 1 and 1/64


@njit(cache=False)
def _flat_and_write(a):
    view = flat(a)
    view[-1] = 9
    return view


def test_flat_is_a_view_of_every_element_in_order():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    view = _flat_and_write(a)
    assert view.shape == (24,) and view.dtype == np.float32
    assert a[1, 2, 3] == 9 and (view[:-1] == np.arange(23)).all()
    del a
    assert view.sum() == sum(range(23)) + 9  # the view keeps the memory alive
    b = np.zeros((5, 2), np.int8)
    assert _flat_and_write(b).shape == (10,) and b[4, 1] == 9

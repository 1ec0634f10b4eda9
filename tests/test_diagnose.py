"""The gradient-flow diagnostic: exact on a linear recurrence, sensible on real cells."""

import json

import numpy as np
import pytest
import torch

from rnnedge.train.diagnose import charlm_curves, gradient_norms, report, vanishing_distance


def scaled_orthogonal(n, rho, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return torch.from_numpy(rho * q)


@pytest.mark.parametrize("rho", [0.5, 1.0, 1.5])
def test_linear_recurrence_decays_as_rho_to_the_distance(rho):
    torch.manual_seed(0)
    n, steps = 16, 30
    W, U = scaled_orthogonal(n, rho), torch.randn(n, 3, dtype=torch.float64)
    xs = [torch.randn(3, dtype=torch.float64) for _ in range(steps)]
    readout = torch.randn(n, dtype=torch.float64)
    norms = gradient_norms(lambda x, h: (W @ h + U @ x,) * 2, torch.zeros(n, dtype=torch.float64),
                           xs, lambda h: readout @ h)
    d = np.arange(steps)
    np.testing.assert_allclose(norms / norms[0], rho ** d, rtol=1e-4)


def test_vanishing_distance_finds_the_first_step_below_threshold():
    assert vanishing_distance(0.5 ** np.arange(20)) == 10  # 0.5**10 < 1e-3 <= 0.5**9
    assert vanishing_distance(np.ones(5)) is None


def test_cells_at_initialization_and_the_report(tmp_path, data_dir, charlm):
    curves = charlm_curves([charlm[0]], steps=60, windows=2, data_dir=data_dir, hidden_size=32)
    assert set(curves) == {"rnn init", "lstm init", "gru init",
                           f"lstm trained ({charlm[0].parent.name}, clip 5.0)"}
    for c in curves.values():
        assert c.shape == (60,) and c[0] == pytest.approx(1.0) and np.all(np.isfinite(c))
    assert curves["rnn init"][-1] < 1e-3  # a small tanh RNN forgets within 60 steps
    rows = report(curves, tmp_path)
    table = json.loads((tmp_path / "gradients.json").read_text())
    assert [r["curve"] for r in rows] == list(curves) and table["summary"] == rows
    assert (tmp_path / "gradients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

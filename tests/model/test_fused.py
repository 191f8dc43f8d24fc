"""The fused recurrence and readout loss: the same values and gradients as the step-by-step
definition, and no host synchronization on a GPU."""

from __future__ import annotations

import pytest
import torch

from nwb_jedi.model.hypernet import RNNWeights
from nwb_jedi.model.rnn import LowRankRecurrence, Readout, poisson_nll, simulate

ALPHA, T, N, R, B = 0.2, 9, 7, 2, 3


def step_by_step(x0, m_rows, u_rows, b, drive):
    """The dynamics as written in the docs, one autograd operation at a time."""
    activity, x = [torch.tanh(x0)], x0
    for t in range(T - 1):
        z = (u_rows * activity[-1].unsqueeze(1)).sum(-1) / N
        x = x + ALPHA * (-x + (m_rows * z.unsqueeze(-1)).sum(1) + b) + drive[:, t]
        activity.append(torch.tanh(x))
    return torch.stack(activity, 1)


def _inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, N), (B, R, N), (B, R, N), (B, N), (B, T - 1, N)]
    values = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    values[-1] *= 0.1
    return [v.requires_grad_() for v in values]


def test_recurrence_matches_the_definition_and_its_gradients():
    inputs = _inputs()
    weights = torch.randn(B, T, N, dtype=torch.float64)
    expected = step_by_step(*inputs)
    fused = LowRankRecurrence.apply(*inputs, ALPHA, T)
    torch.testing.assert_close(fused, expected, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad((fused * weights).sum(), inputs)
    wanted = torch.autograd.grad((expected * weights).sum(), inputs)
    for got, want in zip(grads, wanted, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *a: LowRankRecurrence.apply(*a, ALPHA, T), inputs)


def test_simulate_uses_the_same_dynamics_for_low_and_full_rank():
    x0, m_rows, u_rows, b, drive = [v.detach() for v in _inputs()]
    low = RNNWeights(b=b, x0=x0, M=m_rows.transpose(1, 2), U=u_rows.transpose(1, 2))
    full = RNNWeights(b=b, x0=x0, J=low.dense_J())
    torch.testing.assert_close(simulate(low, T, ALPHA, drive=drive),
                               simulate(full, T, ALPHA, drive=drive), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_fused_poisson_loss_equals_readout_then_nll(masked):
    g = torch.Generator().manual_seed(1)
    readout = Readout(N, "poisson").double()
    with torch.no_grad():
        readout.gain.copy_(torch.randn(N, generator=g))
        readout.offset.copy_(torch.randn(N, generator=g))
    activity = torch.randn(B, T, N, generator=g, dtype=torch.float64, requires_grad=True)
    counts = torch.poisson(torch.full((B, T, N), 1.5, dtype=torch.float64), generator=g)
    mask = (torch.arange(N) % 2).double() if masked else None
    params = [activity, readout.gain, readout.offset]
    fused = readout.loss(activity, counts, mask)
    plain = poisson_nll(readout(activity), counts, mask)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(fused, params), torch.autograd.grad(plain, params),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_no_host_synchronization_inside_the_time_loop():
    device = torch.device("cuda")
    inputs = [v.detach().float().to(device).requires_grad_() for v in _inputs()]
    readout = Readout(N, "poisson").to(device)
    counts = torch.ones(B, T, N, device=device)
    LowRankRecurrence.apply(*inputs, ALPHA, T)  # warm-up outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = readout.loss(LowRankRecurrence.apply(*inputs, ALPHA, T), counts)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")

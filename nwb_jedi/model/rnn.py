"""The data-constrained RNN: units are the recorded neurons, weights come from the hypernetwork.

Dynamics (discretized leaky rate network, α = Δ/τ)::

    x_{t+1} = x_t + α (−x_t + J φ(x_t) + b) + σ √α ξ_t,     φ = tanh

and per-neuron observation ``λ = softplus(a ⊙ φ(x) + c)`` (Poisson, counts per bin) or
``y = a ⊙ φ(x) + c`` (Gaussian, normalized smoothed rates).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nwb_jedi.model.hypernet import RNNWeights


def simulate(weights: RNNWeights, n_steps: int, alpha: float, noise_std: float = 0.0,
             generator: torch.Generator | None = None,
             x0: torch.Tensor | None = None,
             noise: torch.Tensor | None = None,
             drive: torch.Tensor | None = None) -> torch.Tensor:
    """Run the dynamics for a batch of trials and return φ(x_t) of shape (B, n_steps, N).

    The first returned step is φ(x0). The only Python loop is over time: every step is a few
    batched tensor operations over all B trials at once, and for low-rank weights the whole
    recurrence is one autograd node with a hand-written backward (`LowRankRecurrence`).

    Process noise is standard normal ``noise`` of shape (B, n_steps - 1, N), scaled by
    ``noise_std √α``; when not given (and ``noise_std > 0``) it is drawn from `generator` in one
    call before the loop, so the draws of a batch do not depend on how it is split. `drive`
    (B, n_steps - 1, N), optional, is added to the state at every step (external inputs).
    """
    x = weights.x0 if x0 is None else x0
    noise_scale = noise_std * alpha ** 0.5
    if noise_scale > 0 and noise is None:
        noise = torch.randn((x.shape[0], n_steps - 1, x.shape[-1]), generator=generator,
                            device=x.device, dtype=x.dtype)
    if noise_scale > 0:
        scaled = noise_scale * noise[:, :n_steps - 1]
        drive = scaled if drive is None else drive + scaled
    if weights.J is None:
        # Rank-major, contiguous factors: the per-step products then read memory in order.
        m_rows = weights.M.transpose(1, 2).contiguous()
        u_rows = weights.U.transpose(1, 2).contiguous()
        return LowRankRecurrence.apply(x, m_rows, u_rows, weights.b, drive, float(alpha),
                                       int(n_steps))
    activity = [torch.tanh(x)]
    for t in range(n_steps - 1):
        x = x + alpha * (-x + weights.recurrent_input(activity[-1]) + weights.b)
        if drive is not None:
            x = x + drive[:, t]
        activity.append(torch.tanh(x))
    return torch.stack(activity, dim=1)


class LowRankRecurrence(torch.autograd.Function):
    """The low-rank recurrence over all time steps as one autograd node.

    Computes φ_t = tanh(x_t) for t = 0..T-1 with
    ``x_{t+1} = (1 − α) x_t + (α/N) M (Uᵀ φ_t) + α b + d_t`` (d: the drive, optional), for B
    trials with their own factors ``M, U`` given rank-major, (B, R, N).

    Why one node: with a rank of a few, each step's arithmetic is tiny, so autograd's
    per-operation bookkeeping (a dozen graph nodes per step, forward and backward) costs more
    than the arithmetic. Here the forward loop runs without autograd and the backward pass is
    back-propagation through time written out: per step a handful of batched operations, with
    the weight gradients formed afterwards as a few batched matrix products over all steps.

    Why ``tanh(x) = 2σ(2x) − 1``: on CPUs torch's float32 ``tanh`` is about ten times slower than
    its ``sigmoid`` (60 vs 6 µs for a 64 × 182 batch, measured here), and only σ is needed inside
    the loop: ``Uᵀ φ = 2 Uᵀ σ − Uᵀ 1``, and the constant ``M Uᵀ 1`` folds into the bias.
    """

    @staticmethod
    def forward(ctx, x0, m_rows, u_rows, b, drive, alpha, n_steps):
        batch, n_units = x0.shape
        c = alpha / n_units
        u_ones = u_rows.sum(-1)                                      # Uᵀ1, (B, R)
        offset = (m_rows * u_ones.unsqueeze(-1)).sum(1)              # M Uᵀ 1, (B, N)
        # The state is carried as y = 2x, so that σ(y) = (1 + φ) / 2 at every step, and every
        # input that does not depend on the state is summed up front: (T-1, B, N) or (B, N).
        inputs = (2 * alpha) * b - (2 * c) * offset
        if drive is not None:
            inputs = torch.add(inputs.unsqueeze(0), drive.transpose(0, 1), alpha=2)
        # Time-major buffers: each step writes one contiguous (B, N) block.
        sig = torch.empty((n_steps, batch, n_units), dtype=x0.dtype, device=x0.device)
        y = 2 * x0
        for t in range(n_steps):
            s = torch.sigmoid(y, out=sig[t])
            if t == n_steps - 1:
                break
            z = (u_rows * s.unsqueeze(1)).sum(-1)                    # Uᵀ σ, (B, R)
            rec = (m_rows * z.unsqueeze(-1)).sum(1)                  # M Uᵀ σ, (B, N)
            y = torch.add(inputs[t] if drive is not None else inputs, y, alpha=1 - alpha)
            y.add_(rec, alpha=4 * c)
        phi = sig.mul_(2).sub_(1).transpose(0, 1)                    # (B, T, N) view
        ctx.save_for_backward(phi, m_rows, u_rows)
        ctx.alpha = alpha
        ctx.has_drive = drive is not None
        return phi

    @staticmethod
    def backward(ctx, grad_phi):
        phi, m_rows, u_rows = ctx.saved_tensors
        alpha = ctx.alpha
        batch, n_steps, n_units = phi.shape
        c = alpha / n_units
        phi_tm = phi.transpose(0, 1)                                 # (T, B, N), contiguous
        grad_tm = grad_phi.transpose(0, 1)
        slope = 1 - phi_tm * phi_tm                                  # dφ/dx
        # a_t = dL/dx_t = (1 − α) a_{t+1} + (g_t + c U Mᵀ a_{t+1}) ⊙ slope_t; the part that
        # does not depend on a_{t+1} is formed for all steps at once, in place of the result.
        grads = grad_tm * slope
        a = grads[-1]
        for t in range(n_steps - 2, -1, -1):
            w = (m_rows * a.unsqueeze(1)).sum(-1)                    # Mᵀ a_{t+1}, (B, R)
            back = (u_rows * w.unsqueeze(-1)).sum(1)                 # U Mᵀ a_{t+1}, (B, N)
            a = grads[t].addcmul_(back, slope[t], value=c).add_(a, alpha=1 - alpha)
        later = grads[1:].transpose(0, 1)                            # a_{t+1}, (B, T-1, N)
        earlier = phi[:, :-1]                                        # φ_t
        z = torch.bmm(earlier, u_rows.transpose(1, 2))               # Uᵀ φ_t, (B, T-1, R)
        w = torch.bmm(later, m_rows.transpose(1, 2))                 # Mᵀ a_{t+1}
        grad_m = torch.bmm(z.transpose(1, 2), later).mul_(c)         # (B, R, N)
        grad_u = torch.bmm(w.transpose(1, 2), earlier).mul_(c)
        grad_b = later.sum(1).mul_(alpha)
        grad_drive = later if ctx.has_drive else None
        return grads[0], grad_m, grad_u, grad_b, grad_drive, None, None


def draw_noise(batch_size: int, n_steps: int, n_units: int, generator: torch.Generator,
               device: torch.device) -> torch.Tensor:
    """Standard normal process noise for a whole minibatch, (B, n_steps - 1, N).

    Drawn for the global batch on every rank and then indexed by each rank's share, so a
    data-parallel fit sees exactly the noise of a single-process fit.
    """
    return torch.randn((batch_size, n_steps - 1, n_units), generator=generator, device=device)


def step(weights: RNNWeights, x: torch.Tensor, alpha: float) -> torch.Tensor:
    """One noiseless step ``x ↦ x_next`` for states x of shape (B, N)."""
    return x + alpha * (-x + weights.recurrent_input(torch.tanh(x)) + weights.b)


class Readout(nn.Module):
    """Per-neuron gain and offset, shared by all conditions."""

    def __init__(self, n_units: int, observation: str):
        super().__init__()
        self.observation = observation
        self.gain = nn.Parameter(torch.ones(n_units))
        self.offset = nn.Parameter(torch.zeros(n_units))

    def forward(self, activity: torch.Tensor) -> torch.Tensor:
        """Poisson: expected counts per bin. Gaussian: normalized rates."""
        pre = self.gain * activity + self.offset
        if self.observation == "poisson":
            return F.softplus(pre)
        return pre

    def loss(self, activity: torch.Tensor, target: torch.Tensor,
             unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The observation model's mean negative log-likelihood of `target` (see
        `poisson_nll` and `gaussian_nll`), computed from the activity without forming the
        prediction separately."""
        if self.observation == "poisson":
            mask = unit_mask if unit_mask is not None else activity.new_ones(())
            return PoissonReadoutLoss.apply(activity, self.gain, self.offset, target, mask)
        return gaussian_nll(self(activity), target, unit_mask)


class PoissonReadoutLoss(torch.autograd.Function):
    """``poisson_nll(softplus(gain ⊙ φ + offset), counts, mask)`` as one autograd node.

    The same value as composing the readout and the loss, with fewer passes over the
    (B, T, N) arrays: the readout and the likelihood's derivatives combine into one factor,
    ``(1 − k / (λ + ε)) σ(pre)``, instead of autograd's chain of per-operation gradients.
    `mask` is a (N,) 0/1 weight over neurons, or a scalar 1 for all neurons.
    """

    @staticmethod
    def forward(ctx, activity, gain, offset, counts, mask):
        pre = torch.addcmul(offset, activity, gain)
        expected = F.softplus(pre)
        log_term = expected.add(1e-8).log_()
        per_bin = torch.addcmul(expected, counts, log_term, value=-1)
        # The normalization stays a tensor: reading it on the host would make a GPU wait.
        if mask.dim():
            scale = 1.0 / (activity.shape[0] * activity.shape[1] * mask.sum())
            total = (per_bin * mask).sum()
        else:
            scale = torch.full((), 1.0 / per_bin.numel(), dtype=per_bin.dtype,
                               device=per_bin.device)
            total = per_bin.sum()
        ctx.save_for_backward(activity, gain, pre, expected, counts, mask, scale)
        return total * scale

    @staticmethod
    def backward(ctx, grad):
        activity, gain, pre, expected, counts, mask, scale = ctx.saved_tensors
        # d/dpre of λ − k log(λ + ε) with λ = softplus(pre): (1 − k/(λ + ε)) σ(pre)
        factor = counts.div(expected + 1e-8).neg_().add_(1).mul_(torch.sigmoid(pre))
        factor.mul_(grad * scale)
        if mask.dim():
            factor.mul_(mask)
        grad_offset = factor.sum((0, 1))
        grad_gain = (factor * activity).sum((0, 1))
        return factor.mul_(gain), grad_gain, grad_offset, None, None


def poisson_nll(expected: torch.Tensor, counts: torch.Tensor,
                unit_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean Poisson negative log-likelihood per bin, without the log(k!) constant."""
    return _mean_over_units(expected - counts * torch.log(expected + 1e-8), unit_mask)


def gaussian_nll(predicted: torch.Tensor, target: torch.Tensor,
                 unit_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error (the Gaussian negative log-likelihood up to constants)."""
    return _mean_over_units((predicted - target) ** 2, unit_mask)


def _mean_over_units(loss: torch.Tensor, unit_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of a (B, T, N) loss over trials, bins and the neurons selected by `unit_mask`."""
    if unit_mask is None:
        return loss.mean()
    return (loss * unit_mask).sum() / (loss.shape[0] * loss.shape[1] * unit_mask.sum())

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
             noise: torch.Tensor | None = None) -> torch.Tensor:
    """Run the dynamics for a batch of trials and return φ(x_t) of shape (B, n_steps, N).

    The first returned step is φ(x0). Every step is a handful of batched dense tensor
    operations over all B trials at once; the only Python loop is over time.

    Process noise is standard normal ``noise`` of shape (B, n_steps - 1, N), scaled by
    ``noise_std √α``; when not given (and ``noise_std > 0``) it is drawn from `generator` in one
    call before the loop, so the draws of a batch do not depend on how it is split.
    """
    x = weights.x0 if x0 is None else x0
    noise_scale = noise_std * alpha ** 0.5
    if noise_scale > 0 and noise is None:
        noise = torch.randn((x.shape[0], n_steps - 1, x.shape[-1]), generator=generator,
                            device=x.device, dtype=x.dtype)
    activity = [torch.tanh(x)]
    for t in range(n_steps - 1):
        drive = -x + weights.recurrent_input(activity[-1]) + weights.b
        x = x + alpha * drive
        if noise_scale > 0:
            x = x + noise_scale * noise[:, t]
        activity.append(torch.tanh(x))
    return torch.stack(activity, dim=1)


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

"""Per-trial contexts: what makes one trial of a condition differ from another.

A JEDI model maps each condition's embedding to the weights of an RNN; a trial of that
condition may add its own context, fitted for training trials and inferred (with the network
frozen) for new ones:

- an embedding offset δ_k (d values), added to the condition's embedding;
- an initial-state offset ``W s_k`` (q values ``s_k``; ``W`` (N × q) learned, shared): where in
  its condition's dynamics the trial starts;
- inferred inputs ``B u_k(t)`` (p smooth time courses ``u_k``; ``B`` (N × p) learned, shared),
  as LFADS's controller gives its generator: the time-varying, population-wide fluctuations
  that a starting point alone cannot carry (it decays within a time constant).

The inputs are smooth by construction: ``u_k(t) = Σ_j c_kj ψ_j(t)``, Gaussian bumps ψ_j every
`knot_step` bins, so a trial's inputs are a few coefficients per input dimension.

Every context has a Gaussian prior (an L2 penalty). Its strength is per trial, against the
trial's summed log-likelihood (T × N terms), so it is a maximum a posteriori estimate whose
meaning does not depend on how many trials, bins or neurons a dataset has. ``W`` and ``B`` are
normalized (unit root-mean-square loading per neuron and column), so the prior's scale cannot
be traded against theirs.

While a model is fitted, each trial's contexts are centred on its condition's (the condition's
mean context is subtracted in the forward pass): a condition's embedding then carries what its
trials share, the contexts only how they differ, so the condition's own network (what spectra,
fixed points and interpolation analyse) is the centre of its trials rather than an arbitrary
split between an embedding and its trials' inputs. After the fit the stored contexts are
centred once and the centring switched off, so a saved model needs no grouping to be run.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def input_basis(n_drive_steps: int, n_basis: int, knot_step: float, *,
                dtype: torch.dtype = torch.float32,
                device: torch.device | None = None) -> torch.Tensor:
    """Gaussian bumps every `knot_step` steps, standard deviation `knot_step`:
    (n_drive_steps, n_basis). Steps beyond the last knot see the bumps' tails, so trials may
    run longer than those the basis was laid out for (forward prediction)."""
    t = torch.arange(n_drive_steps, dtype=dtype, device=device).unsqueeze(1)
    knots = torch.arange(n_basis, dtype=dtype, device=device).unsqueeze(0) * knot_step
    return torch.exp(-0.5 * ((t - knots) / knot_step) ** 2)


def n_basis_for(n_bins: int, knot_step: float) -> int:
    """Knots needed to cover the drive steps of a trial of `n_bins` bins."""
    return max(1, math.ceil(max(n_bins - 2, 0) / knot_step)) + 1


class TrialContexts(nn.Module):
    """The per-trial contexts of the trials a model was fitted on (rows), and the shared
    loadings that map them into the network.

    Parameters
    ----------
    n_trials : int
        Rows (0 when the model has no per-trial contexts).
    n_units, embed_dim : int
        Neurons N and embedding size d.
    offsets : bool
        Whether trials have embedding offsets.
    state_dim, input_dim : int
        q and p (0: that context is off).
    n_basis : int
        Basis functions per input dimension.
    """

    def __init__(self, n_trials: int, n_units: int, embed_dim: int, offsets: bool,
                 state_dim: int, input_dim: int, n_basis: int):
        super().__init__()
        rows = n_trials
        self.offsets = nn.Parameter(torch.zeros(rows if offsets else 0, embed_dim))
        self.states = nn.Parameter(torch.zeros(rows if state_dim else 0, state_dim))
        self.inputs = nn.Parameter(torch.zeros(rows if input_dim else 0, n_basis, input_dim))
        self.state_loading = nn.Parameter(torch.randn(n_units, state_dim))
        self.input_weights = nn.Parameter(torch.randn(n_units, input_dim))
        # The condition of each row while fitting (see `center_on`); not part of the state.
        self.register_buffer("row_groups", torch.zeros(0, dtype=torch.long), persistent=False)

    def center_on(self, groups: torch.Tensor | None) -> None:
        """Centre every row's contexts on its group's (condition's) mean in the forward pass
        from now on (`groups`: one group index per row), or stop centring (None). A group of
        one row is not centred."""
        if groups is None:
            self.row_groups = torch.zeros(0, dtype=torch.long, device=self.offsets.device)
            return
        groups = torch.as_tensor(groups, dtype=torch.long, device=self.offsets.device)
        if len(groups) != self.n_rows:
            raise ValueError(f"{len(groups)} groups for {self.n_rows} context rows")
        self.row_groups = groups

    def fix_centering(self) -> None:
        """Store the centred contexts and stop centring: the forward pass is unchanged."""
        with torch.no_grad():
            for param in (self.offsets, self.states, self.inputs):
                param.copy_(self._centered(param))
        self.center_on(None)

    def _centered(self, param: torch.Tensor, index: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """Rows `index` of `param` (all rows by default) less the mean of their groups (the
        rows themselves when not centring).

        The group means are differentiable in every row of the group, so a minibatch's
        gradient reaches the group's other rows too (the same on every process of a
        distributed fit, whose ranks hold different rows of a batch)."""
        groups = self.row_groups
        if not len(groups) or not param.shape[0]:
            return param if index is None else param[index]
        n_groups = int(groups.max()) + 1
        sums = param.new_zeros((n_groups,) + param.shape[1:]).index_add(0, groups, param)
        counts = torch.bincount(groups, minlength=n_groups).to(param.dtype)
        # A trial alone in its group keeps its context: centring would remove what its
        # condition's embedding cannot carry (a starting point, inputs).
        scale = torch.where(counts > 1, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
        centered = param - (sums * scale.reshape((-1,) + (1,) * (param.dim() - 1)))[groups]
        return centered if index is None else centered[index]

    @property
    def n_rows(self) -> int:
        return max(self.offsets.shape[0], self.states.shape[0], self.inputs.shape[0])

    def trainable(self) -> list[nn.Parameter]:
        """The per-trial parameters that exist (empty ones take no gradient)."""
        return [p for p in (self.offsets, self.states, self.inputs) if p.shape[0]]

    def loadings(self) -> list[nn.Parameter]:
        """The shared loadings in use."""
        return [p for p in (self.state_loading, self.input_weights) if p.shape[1]]

    @staticmethod
    def _normalized(loading: torch.Tensor) -> torch.Tensor:
        # Unit root-mean-square per column: a context value of 1 moves each neuron by ~1.
        return loading / loading.pow(2).mean(0, keepdim=True).clamp_min(1e-12).sqrt()

    def _rows(self, param: torch.Tensor, index: torch.Tensor) -> torch.Tensor | None:
        """Rows of `param` for trials with a context (index >= 0), zeros for the others."""
        if not param.shape[0] or index is None:
            return None
        known = (index >= 0).to(param.dtype)
        rows = self._centered(param, index.clamp_min(0))
        return rows * known.reshape((-1,) + (1,) * (rows.dim() - 1))

    def embedding_offsets(self, index: torch.Tensor | None) -> torch.Tensor | None:
        return self._rows(self.offsets, index)

    def state_offsets(self, index: torch.Tensor | None) -> torch.Tensor | None:
        """``W s_k`` for each trial, (B, N), or None without state contexts."""
        states = self._rows(self.states, index)
        if states is None:
            return None
        return states @ self._normalized(self.state_loading).T

    def drive(self, index: torch.Tensor | None, n_steps: int, alpha: float,
              knot_step: float) -> torch.Tensor | None:
        """``α B u_k(t)`` for each trial and step, (B, n_steps - 1, N), or None."""
        coefficients = self._rows(self.inputs, index)
        if coefficients is None or n_steps < 2:
            return None
        basis = input_basis(n_steps - 1, coefficients.shape[1], knot_step,
                            dtype=coefficients.dtype, device=coefficients.device)
        inputs = torch.einsum("tj,bjp->btp", basis, coefficients)
        return (alpha * inputs) @ self._normalized(self.input_weights).T

    def penalty(self, index: torch.Tensor, weights: dict[str, float],
                per_trial_terms: float) -> torch.Tensor | float:
        """Mean over these trials of the priors' negative log density, divided by the number
        of likelihood terms of a trial (so it sits beside a per-element mean likelihood)."""
        known = index[index >= 0]
        if not len(known):
            return 0.0
        total = 0.0
        for name, param in (("offsets", self.offsets), ("states", self.states),
                            ("inputs", self.inputs)):
            if param.shape[0] and weights.get(name, 0.0) > 0:
                total = total + weights[name] * param[known].pow(2).flatten(1).sum(1).mean()
        return total / per_trial_terms

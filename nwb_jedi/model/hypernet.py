"""The hypernetwork: a condition embedding in, the weights of one recurrent network out."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nwb_jedi._limits import array_limit, format_bytes
from nwb_jedi.errors import UserError


@dataclass
class RNNWeights:
    """Per-trial weights of the data-constrained RNN, batched over B trials.

    Low rank: ``J = M Uᵀ / N`` with ``M, U`` of shape (B, N, R); full rank (ablation): ``J`` of
    shape (B, N, N) and ``M``/``U`` are None. ``b`` and ``x0`` have shape (B, N).
    """

    b: torch.Tensor
    x0: torch.Tensor
    M: torch.Tensor | None = None
    U: torch.Tensor | None = None
    J: torch.Tensor | None = None
    _rank_major: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def n_units(self) -> int:
        return int(self.b.shape[-1])

    def recurrent_input(self, rates: torch.Tensor) -> torch.Tensor:
        """``J φ`` for a batch of activations φ of shape (B, N)."""
        if self.J is not None:
            return torch.bmm(self.J, rates.unsqueeze(-1)).squeeze(-1)
        # Two thin products (N×R each) instead of forming the N×N matrix: this is what makes the
        # low-rank step cheap. With R of a few, a batched matmul is dominated by its call
        # overhead; multiply-and-sum over a rank-major (B, R, N) copy made once per forward
        # pass measured 3x faster forward + backward on CPU (B=64, N=182, R=4).
        if self._rank_major is None:
            self._rank_major = (self.U.transpose(1, 2).contiguous(),
                                self.M.transpose(1, 2).contiguous())
        u_rows, m_rows = self._rank_major
        overlap = (u_rows * rates.unsqueeze(1)).sum(-1) / self.n_units  # (B, R)
        return (m_rows * overlap.unsqueeze(-1)).sum(1)  # (B, N)

    def expand(self, batch: int) -> RNNWeights:
        """The weights of a single network (leading size 1) repeated for `batch` states."""
        def grow(t):
            return None if t is None else t.expand(batch, *t.shape[1:])

        return RNNWeights(b=grow(self.b), x0=grow(self.x0), M=grow(self.M), U=grow(self.U),
                          J=grow(self.J))

    def dense_J(self) -> torch.Tensor:
        """The full (B, N, N) connectivity."""
        if self.J is not None:
            return self.J
        return torch.bmm(self.M, self.U.transpose(1, 2)) / self.n_units


def _check_size(embed_dim: int, hidden: int, n_outputs: int) -> None:
    """Refuse a hypernetwork whose parameters would not fit the memory bound, before
    allocating it (its output layer alone is hidden x outputs)."""
    n_params = (embed_dim + 1) * hidden + (hidden + 1) * hidden + (hidden + 1) * n_outputs
    size = 4 * n_params
    limit = array_limit(UserError)
    if size > limit:
        raise UserError(f"the hypernetwork would hold {n_params:.3g} parameters "
                        f"({format_bytes(size)}, float32), more than the {format_bytes(limit)} "
                        f"allowed; lower --hidden (now {hidden}), --rank or --embed-dim, or "
                        f"raise NWB_JEDI_MAX_ARRAY_GB")


class HyperNetwork(nn.Module):
    """MLP ``d → H → H → P`` (ELU) mapping embeddings to RNN weights.

    Parameters
    ----------
    embed_dim : int
        Size d of the condition embedding.
    n_units : int
        Number N of recorded neurons (= RNN units).
    rank : int or None
        Rank R of the connectivity; None emits a full N×N matrix (ablation only).
    hidden : int
        Width H of the two hidden layers.
    """

    def __init__(self, embed_dim: int, n_units: int, rank: int | None, hidden: int = 128):
        super().__init__()
        self.embed_dim = embed_dim
        self.n_units = n_units
        self.rank = rank
        n = n_units
        self.sizes = ({"M": n * rank, "U": n * rank} if rank is not None else {"J": n * n})
        self.sizes.update({"b": n, "x0": n})
        _check_size(embed_dim, hidden, sum(self.sizes.values()))
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, hidden), nn.ELU(),
            nn.Linear(hidden, hidden), nn.ELU(),
            nn.Linear(hidden, sum(self.sizes.values())),
        )
        self._init_output_bias()

    def _init_output_bias(self) -> None:
        # The output bias is the part of the weights shared by every condition. Start the
        # low-rank factors as unit-variance random vectors (J small, ~sqrt(R/N)), the bias at 0
        # and the initial state near 0, so training starts from decaying, stable dynamics.
        last = self.layers[-1]
        with torch.no_grad():
            chunks = []
            for name, size in self.sizes.items():
                if name in ("M", "U"):
                    chunks.append(torch.randn(size))
                elif name == "J":
                    chunks.append(torch.randn(size) / self.n_units ** 0.5 * 0.5)
                else:
                    chunks.append(torch.zeros(size))
            last.bias.copy_(torch.cat(chunks))

    def forward(self, embeddings: torch.Tensor) -> RNNWeights:
        out = self.layers(embeddings)
        parts = dict(zip(self.sizes, torch.split(out, list(self.sizes.values()), dim=-1),
                         strict=True))
        batch = embeddings.shape[0]
        n = self.n_units
        if self.rank is not None:
            return RNNWeights(b=parts["b"], x0=parts["x0"],
                              M=parts["M"].reshape(batch, n, self.rank),
                              U=parts["U"].reshape(batch, n, self.rank))
        return RNNWeights(b=parts["b"], x0=parts["x0"], J=parts["J"].reshape(batch, n, n))

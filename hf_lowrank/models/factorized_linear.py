"""`FactorizedLinear`: a dense linear map replaced by two maps through an r-dimensional bottleneck.

This module only imports torch and a flat sibling: the modeling files reach it through a flat relative import, so
`save_pretrained` can copy it next to a checkpoint for `trust_remote_code=True` loading.
"""

import math
import operator

import torch
from torch import nn
from torch.nn import functional as F

from .decomposition import InputStatistics, LinearDecomposition, decompose_linear


__all__ = ["FactorizedLinear", "as_integer", "check_rank"]


def as_integer(value) -> int | None:
    """`value` as a plain int when it is an integer of any kind (Python, numpy or a 0-d integer tensor, by
    `operator.index`), else None. Booleans (Python, numpy, tensors) are not integers here."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and (value.ndim != 0 or value.dtype == torch.bool)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_rank(rank, in_features: int, out_features: int, layer: str = "layer") -> int:
    """Return `rank` as an int if it is a valid bottleneck width for an `in_features -> out_features` map, else raise.

    Valid ranks are the integers in `[1, min(in_features, out_features)]`, of any integer type (`np.int64(4)` and
    `torch.tensor(4)` are 4; booleans and floats are refused). The error names `layer`, the value and that range.
    """
    max_rank = min(in_features, out_features)
    value = as_integer(rank)
    if value is None or not 1 <= value <= max_rank:
        raise ValueError(
            f"rank for {layer} ({in_features} -> {out_features}) must be an integer in [1, {max_rank}], got {rank!r}."
        )
    return value


class FactorizedLinear(nn.Module):
    """`y = up @ (down @ x) + bias`: a linear map of rank at most `rank`.

    Parameters:
        down: `(rank, in_features)`, the first map (V_r in the SVD initialisation).
        up: `(out_features, rank)`, the second map (U_r).
        bias: `(out_features,)` or `None`, kept from the dense layer.

    A dense `nn.Linear` has `in * out` weights; this layer has `rank * (in + out)`, fewer only when
    `rank < in * out / (in + out)`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank = check_rank(rank, in_features, out_features)
        factory = {"device": device, "dtype": dtype}
        self.down = nn.Parameter(torch.empty(rank, in_features, **factory))
        self.up = nn.Parameter(torch.empty(out_features, rank, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self.active_rank: int | None = None  # a truncated view: only the first r directions (nested training)
        # The bias added after the second product rather than inside it (`addmm`): a compiler then fuses it into the
        # next element-wise pass (GELU, residual addition) instead of broadcasting it into the output buffer first.
        # Set by `inference_layout` for compiled backends; slower in eager mode.
        self.bias_epilogue = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform init with the same output scale as `nn.Linear`'s default (Kaiming-uniform, a=sqrt(5))."""
        nn.init.uniform_(self.down, -1.0 / math.sqrt(self.in_features), 1.0 / math.sqrt(self.in_features))
        nn.init.uniform_(self.up, -1.0 / math.sqrt(self.rank), 1.0 / math.sqrt(self.rank))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1.0 / math.sqrt(self.in_features), 1.0 / math.sqrt(self.in_features))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.active_rank is not None and self.active_rank < self.rank:  # the rank-r prefix of the factors
            r = self.active_rank
            # (..., in_features) -> (..., r) -> (..., out_features)
            return F.linear(F.linear(hidden_states, self.down[:r]), self.up[:, :r], self.bias)
        if self.bias_epilogue and self.bias is not None:
            # (..., in_features) -> (..., rank) -> (..., out_features), then + (out_features,)
            return F.linear(F.linear(hidden_states, self.down), self.up) + self.bias
        # (..., in_features) -> (..., rank) -> (..., out_features)
        return F.linear(F.linear(hidden_states, self.down), self.up, self.bias)

    @torch.no_grad()
    def truncated(self, rank: int) -> "FactorizedLinear":
        """A new layer of rank `rank` (at most this one's) holding the first `rank` directions of these factors:
        the layer this one computes under `active_rank = rank`."""
        rank = check_rank(rank, self.in_features, self.out_features)
        rank = min(rank, self.rank)
        layer = FactorizedLinear(
            self.in_features,
            self.out_features,
            rank,
            bias=self.bias is not None,
            device=self.down.device,
            dtype=self.down.dtype,
        )
        layer.down.copy_(self.down[:rank])
        layer.up.copy_(self.up[:, :rank])
        if self.bias is not None:
            layer.bias.copy_(self.bias)
        return layer

    @classmethod
    @torch.no_grad()
    def from_linear(
        cls,
        linear: nn.Linear,
        rank: int,
        init: str = "svd",
        statistics: InputStatistics | None = None,
        alpha: float = 0.5,
    ) -> "FactorizedLinear":
        """The rank-`rank` factorization of `linear` for `init` (default: its truncated SVD, the best rank-r
        approximation by Eckart–Young; the data-aware inits need the layer's calibration `statistics`, see
        `decomposition.py`); dtype and device are those of `linear`."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"FactorizedLinear.from_linear expects an nn.Linear, got {type(linear).__name__}.")
        layer = cls(
            linear.in_features,
            linear.out_features,
            rank,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        layer.check_source(linear)
        return layer.init_from_decomposition_(decompose_linear(linear.weight, init, statistics, alpha), linear.bias)

    @torch.no_grad()
    def init_from_linear_(self, linear: nn.Linear) -> "FactorizedLinear":
        """Set this layer, in place, to the truncated SVD of `linear` at this layer's rank, and copy its bias.

        With `W = U S V^T`: `up = U[:, :r] S_r^(1/2)` and `down = S_r^(1/2) V^T[:r]`, so `up @ down` is the
        truncated SVD of `W`. The SVD runs in float32 (float64 for a float64 layer) whatever the layer's dtype.
        """
        self.check_source(linear)
        return self.init_from_decomposition_(decompose_linear(linear.weight, "svd"), linear.bias)

    def check_source(self, linear: nn.Linear) -> None:
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"init_from_linear_ expects an nn.Linear, got {type(linear).__name__}.")
        if linear.weight.is_meta:
            raise ValueError("FactorizedLinear.from_linear needs real weights; the layer is on the meta device.")
        if (linear.in_features, linear.out_features) != (self.in_features, self.out_features):
            raise ValueError(
                f"cannot initialise a {self.in_features} -> {self.out_features} FactorizedLinear from a "
                f"{linear.in_features} -> {linear.out_features} nn.Linear."
            )
        if (linear.bias is None) != (self.bias is None):
            raise ValueError(
                f"bias mismatch: the nn.Linear has bias={linear.bias is not None}, this layer "
                f"bias={self.bias is not None}."
            )
        check_rank(self.rank, linear.in_features, linear.out_features)

    @torch.no_grad()
    def init_from_decomposition_(
        self, decomposition: LinearDecomposition, bias: torch.Tensor | None = None
    ) -> "FactorizedLinear":
        """Set this layer, in place, to `decomposition` truncated at this layer's rank (`up @ down = W_r`, see
        `LinearDecomposition.factors`), and copy `bias` `(out_features,)` when given."""
        if (decomposition.left.shape[0], decomposition.right.shape[1]) != (self.out_features, self.in_features):
            raise ValueError(
                f"a decomposition of a {decomposition.right.shape[1]} -> {decomposition.left.shape[0]} layer cannot "
                f"initialise a {self.in_features} -> {self.out_features} FactorizedLinear."
            )
        check_rank(self.rank, self.in_features, decomposition.max_rank)
        up, down = decomposition.factors(self.rank)  # (out, rank), (rank, in)
        self.up.copy_(up)
        self.down.copy_(down)
        if bias is not None and self.bias is not None:
            self.bias.copy_(bias)
        return self

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """The dense `(out_features, in_features)` weight `up @ down`."""
        return self.up @ self.down

    @torch.no_grad()
    def to_linear(self) -> nn.Linear:
        """A dense `nn.Linear` computing the same map (same dtype and device)."""
        linear = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.down.device,
            dtype=self.down.dtype,
        )
        linear.weight.copy_(self.merged_weight())
        if self.bias is not None:
            linear.bias.copy_(self.bias)
        return linear

    def extra_repr(self) -> str:
        view = f", active_rank={self.active_rank}" if self.active_rank is not None else ""
        view += ", bias_epilogue=True" if self.bias_epilogue else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"bias={self.bias is not None}{view}"
        )

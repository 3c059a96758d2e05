"""The factorization of one dense linear layer, computed once and truncated at any rank: plain SVD or a data-aware
SVD weighted by calibration statistics of the layer's inputs (`whitened`, `activation`) or of its task-loss
gradients (`fisher`).

Every init is a weighted SVD: with `M = D_out W D_in` (the weighting of the init) and `M = U S V^T`, the rank-r
approximation is `W_r = D_out^-1 U_r S_r V_r^T D_in^-1`. `LinearDecomposition` holds `left = D_out^-1 U`,
`S` and `right = V^T D_in^-1`, so that a `FactorizedLinear` of any rank takes
`up = left[:, :r] S_r^(1/2)` and `down = S_r^(1/2) right[:r]`, and at full rank `up @ down = W` exactly.

- ``svd``: no weighting; minimises ||W - W_r||_F.
- ``whitened`` (SVD-LLM): `D_in = L`, the lower Cholesky factor of the input second moment `C = X^T X / n`; then
  ||(W - W_r) X^T||_F^2 / n is the sum of the discarded S_i^2, the smallest output error of any rank-r map.
- ``activation`` (ASVD): `D_in = diag(s)`, `s_j = (mean |x_j|)^alpha`.
- ``fisher`` (FWSVD): `D_out = diag(sqrt(f))`, `f_i` the summed squared task-loss gradients of row i.

Statistics are float64; where `C` is not positive definite (dead or constant channels, fewer calibration tokens
than input features) a diagonal shift `eps * mean(diag C)` with eps growing from 1e-6 is added, and if no shift up to
1e-1 helps, the eigendecomposition `C = Q D Q^T` with `D` floored is used; `fallback` says which.

Only imports torch (the `trust_remote_code` unit).
"""

import math
import warnings
from dataclasses import dataclass, field
from numbers import Real

import torch


__all__ = [
    "DATA_AWARE_INITS",
    "INITS",
    "InputStatistics",
    "LinearDecomposition",
    "decompose_layers",
    "decompose_linear",
    "fallback_summary",
    "teacher_decompositions",
    "whitening_factor",
]

INITS = ("svd", "whitened", "activation", "fisher")
DATA_AWARE_INITS = ("whitened", "activation", "fisher")

# Relative floors: a channel scale below FLOOR * max scale is raised to it; a Cholesky diagonal entry below
# sqrt(CHOLESKY_FLOOR * mean(diag C)) counts as a failed factorization.
FLOOR = 1e-6
CHOLESKY_FLOOR = 1e-12
SHIFTS = tuple(10.0**k for k in range(-6, 0))  # 1e-6 ... 1e-1, times mean(diag C)


@dataclass
class InputStatistics:
    """Calibration statistics of one linear layer, accumulated in float64 over `num_tokens` input vectors.

    Attributes:
        gram: `(in_features, in_features)`, sum over tokens of `x x^T`.
        abs_sum: `(in_features,)`, sum over tokens of `|x|`.
        num_tokens: how many input vectors (tokens of all calibration examples) were summed.
        row_fisher: `(out_features,)`, sum over calibration batches of the squared task-loss gradient of each
            weight row (summed over the row), or None when not gathered.
    """

    gram: torch.Tensor
    abs_sum: torch.Tensor
    num_tokens: int = 0
    row_fisher: torch.Tensor | None = None

    @classmethod
    def empty(cls, in_features: int, device=None) -> "InputStatistics":
        zeros = {"dtype": torch.float64, "device": device}
        return cls(torch.zeros(in_features, in_features, **zeros), torch.zeros(in_features, **zeros))

    @torch.no_grad()
    def add(self, inputs: torch.Tensor) -> None:
        """Accumulate a batch of inputs `(..., in_features)`."""
        flat = inputs.detach().reshape(-1, inputs.shape[-1]).to(torch.float64)  # (tokens, in_features)
        self.gram += flat.T @ flat  # (in, in)
        self.abs_sum += flat.abs().sum(dim=0)  # (in,)
        self.num_tokens += flat.shape[0]

    @property
    def second_moment(self) -> torch.Tensor:
        """`C = X^T X / n`, `(in_features, in_features)`."""
        return self.gram / max(self.num_tokens, 1)

    @property
    def mean_abs(self) -> torch.Tensor:
        """`mean |x_j|` per input channel, `(in_features,)`."""
        return self.abs_sum / max(self.num_tokens, 1)


@torch.no_grad()
def whitening_factor(second_moment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """`(L, L_inverse, fallback)` with `L L^T` equal to `second_moment` (float64), or to it shifted / floored.

    `L` is the lower Cholesky factor when one exists (fallback ``"cholesky"``), else that of `C + eps * mean(diag C)
    * I` for the smallest eps in 1e-6 ... 1e-1 that works (``"diagonal shift 1e-04"``), else `Q D^(1/2)` from the
    eigendecomposition with `D` floored at 1e-6 of its largest value (``"eigendecomposition"``). An all-zero `C`
    (no signal at all) gives the identity (``"identity (zero inputs)"``)."""
    c = second_moment.to(torch.float64)
    c = (c + c.T) / 2  # (in, in), symmetric up to rounding
    size = c.shape[0]
    eye = torch.eye(size, dtype=c.dtype, device=c.device)
    scale = torch.diagonal(c).mean().item()
    if not math.isfinite(scale) or scale <= 0:
        return eye, eye.clone(), "identity (zero inputs)"
    for shift in (0.0, *SHIFTS):
        factor, info = torch.linalg.cholesky_ex(c + shift * scale * eye)
        if info.item() == 0 and torch.diagonal(factor).min().item() ** 2 >= CHOLESKY_FLOOR * scale:
            inverse = torch.linalg.solve_triangular(factor, eye, upper=False)  # (in, in), L^-1
            return factor, inverse, "cholesky" if shift == 0 else f"diagonal shift {shift:.0e}"
    values, vectors = torch.linalg.eigh(c)  # (in,), (in, in)
    values = values.clamp(min=FLOOR * max(values.max().item(), 0.0) or 1.0)
    return vectors * values.sqrt(), (vectors / values.sqrt()).T, "eigendecomposition"


def _floored(scale: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """`scale` with entries below FLOOR * max raised to it (all ones if it is all zero); whether any was raised."""
    top = scale.max().item() if scale.numel() else 0.0
    if not math.isfinite(top) or top <= 0:
        return torch.ones_like(scale), True
    floor = FLOOR * top
    return scale.clamp(min=floor), bool((scale < floor).any())


@dataclass
class LinearDecomposition:
    """One layer's factorization for every rank: `W_r = left[:, :r] diag(S_r) right[:r]`.

    Attributes:
        init: the init it was computed for (one of `INITS`).
        left: `(out_features, k)`, `D_out^-1 U`.
        singular_values: `(k,)`, the weighted singular values S, descending (k = min(in, out)).
        right: `(k, in_features)`, `V^T D_in^-1`.
        fallback: how the weighting was obtained (``"none"`` for svd, ``"cholesky"``, a diagonal shift, ...).
    """

    init: str
    left: torch.Tensor
    singular_values: torch.Tensor
    right: torch.Tensor
    fallback: str = "none"
    notes: list[str] = field(default_factory=list)

    @property
    def max_rank(self) -> int:
        return self.singular_values.numel()

    def factors(self, rank: int, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`(up, down)` of a rank-`rank` `FactorizedLinear`: `(out, rank)` and `(rank, in)`, their product `W_r`."""
        if not 1 <= rank <= self.max_rank:
            raise ValueError(f"rank must be in [1, {self.max_rank}] for this layer, got {rank!r}.")
        root = self.singular_values[:rank].sqrt()  # (rank,)
        up = self.left[:, :rank] * root  # (out, rank)
        down = root[:, None] * self.right[:rank]  # (rank, in)
        return (up, down) if dtype is None else (up.to(dtype), down.to(dtype))

    def discarded_energy(self, rank: int) -> float:
        """Sum of the squared singular values a rank-`rank` truncation drops (for `whitened`: the output error
        ||(W - W_r) X^T||_F^2 / n on the calibration inputs)."""
        return float((self.singular_values[rank:].to(torch.float64) ** 2).sum())

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.left, self.singular_values, self.right))


@torch.no_grad()
def decompose_linear(
    weight: torch.Tensor,
    init: str = "svd",
    statistics: InputStatistics | None = None,
    alpha: float = 0.5,
    dtype: torch.dtype | None = None,
) -> LinearDecomposition:
    """The factorization of `weight` `(out_features, in_features)` for `init` (see the module docstring).

    Args:
        statistics: the layer's calibration statistics; required for every init but ``"svd"`` (``"fisher"`` needs
            `row_fisher`).
        alpha: the `activation` init's exponent (``s_j = mean|x_j|^alpha``), a finite number >= 0.
        dtype: the dtype of the stored factors (default: float64 for a float64 weight, else float32). Plain SVD runs
            in float32 for a float32 weight (as `FactorizedLinear.from_linear`); the data-aware ones in float64.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}.")
    if init != "svd" and statistics is None:
        raise ValueError(f"init {init!r} needs calibration statistics of the layer's inputs; got none.")
    if not (isinstance(alpha, Real) and not isinstance(alpha, bool) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}.")
    out_features, in_features = weight.shape
    if statistics is not None and statistics.gram.shape != (in_features, in_features):
        raise ValueError(
            f"statistics of inputs of width {statistics.gram.shape[0]} do not fit a weight of in_features "
            f"{in_features}."
        )
    dtype = dtype or (torch.float64 if weight.dtype == torch.float64 else torch.float32)
    if init == "svd":
        compute = torch.float64 if weight.dtype == torch.float64 else torch.float32
        u, s, vh = torch.linalg.svd(weight.detach().to(compute), full_matrices=False)  # (out, k), (k,), (k, in)
        return LinearDecomposition("svd", u.to(dtype), s.to(dtype), vh.to(dtype))

    w = weight.detach().to(device=statistics.gram.device, dtype=torch.float64)  # (out, in)
    notes = []
    if init == "whitened":
        factor, inverse, fallback = whitening_factor(statistics.second_moment)  # (in, in) each
        u, s, vh = torch.linalg.svd(w @ factor, full_matrices=False)
        left, right = u, vh @ inverse  # (out, k), (k, in)
    elif init == "activation":
        scale, raised = _floored(statistics.mean_abs**alpha)  # (in,)
        fallback = "channel scale floored" if raised else "none"
        u, s, vh = torch.linalg.svd(w * scale, full_matrices=False)
        left, right = u, vh / scale  # (out, k), (k, in)
    else:  # fisher
        if statistics.row_fisher is None:
            raise ValueError("init 'fisher' needs per-row Fisher statistics (gathered with fisher=True); got none.")
        scale, raised = _floored(statistics.row_fisher.to(torch.float64).sqrt())  # (out,)
        fallback = "row weight floored" if raised else "none"
        u, s, vh = torch.linalg.svd(scale[:, None] * w, full_matrices=False)
        left, right = u / scale[:, None], vh  # (out, k), (k, in)
    if statistics.num_tokens < in_features:
        notes.append(f"{statistics.num_tokens} calibration tokens < {in_features} input features")
    device = weight.device
    return LinearDecomposition(
        init, left.to(device, dtype), s.to(device, dtype), right.to(device, dtype), fallback, notes
    )


def decompose_layers(
    model: torch.nn.Module,
    names,
    init: str = "svd",
    statistics=None,
    alpha: float = 0.5,
    progress=None,
    warn: bool = True,
) -> dict[str, LinearDecomposition]:
    """`decompose_linear` of each `nn.Linear` of `model` named in `names`, keyed by name: computed once, then any
    number of students of any ranks take their factors from it (`copy_teacher_weights(..., decompositions=...)`).

    Args:
        statistics: name -> `InputStatistics` (required for the data-aware inits; see `collect_input_statistics`).
        progress: an optional callable wrapping the iterable of names (e.g. ``tqdm``).
        warn: warn (UserWarning) when a layer needed a fallback or had fewer calibration tokens than input
            features, naming them (`fallback_summary`).
    """
    names = list(names)
    if init != "svd":
        missing = [name for name in names if name not in (statistics or {})]
        if missing:
            raise ValueError(
                f"init {init!r} needs calibration statistics for every layer; none for {missing[:6]}"
                f"{' ...' if len(missing) > 6 else ''}."
            )
    decompositions = {}
    for name in progress(names) if progress else names:
        linear = model.get_submodule(name)
        layer_statistics = statistics[name] if init != "svd" else None
        decompositions[name] = decompose_linear(linear.weight, init, layer_statistics, alpha)
    lines = fallback_summary(decompositions) if warn else []
    if lines:
        warnings.warn(f"init {init!r}: " + "; ".join(lines) + ".", UserWarning, stacklevel=2)
    return decompositions


def fallback_summary(decompositions: dict[str, LinearDecomposition]) -> list[str]:
    """One line per fallback other than the plain path: how many layers used it, and the notes about their
    calibration data (e.g. fewer tokens than input features); empty when every layer took the plain path."""
    by_fallback: dict[str, list[str]] = {}
    for name, decomposition in decompositions.items():
        if decomposition.fallback not in ("none", "cholesky"):
            by_fallback.setdefault(decomposition.fallback, []).append(name)
    lines = [
        f"{len(layers)} layer(s) used the fallback '{fallback}' (e.g. {layers[0]})"
        for fallback, layers in sorted(by_fallback.items())
    ]
    noted = {note for decomposition in decompositions.values() for note in decomposition.notes}
    lines += [f"calibration: {note} in some layers" for note in sorted(noted)]
    return lines


def teacher_decompositions(
    teacher: torch.nn.Module,
    names,
    init: str = "svd",
    calibration=None,
    alpha: float = 0.5,
    decompositions: dict[str, LinearDecomposition] | None = None,
) -> dict[str, LinearDecomposition] | None:
    """What a `from_teacher` initialises the layers `names` of `teacher` with: `decompositions` when given (checked
    to be of `init` and to cover `names`), else `decompose_layers` for a data-aware init, else None (the truncated
    SVD, computed per layer by `copy_teacher_weights`)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}.")
    names = list(names)
    if decompositions is not None:
        wrong = sorted({d.init for d in decompositions.values()} - {init})
        if wrong:
            raise ValueError(f"decompositions were computed for init {wrong}, not for init {init!r}.")
        missing = [name for name in names if name not in decompositions]
        if missing:
            more = " ..." if len(missing) > 6 else ""
            raise ValueError(f"decompositions lack the factorized layers {missing[:6]}{more}.")
        return decompositions
    if init == "svd":
        return None
    if calibration is None:
        raise ValueError(
            f"init {init!r} needs calibration statistics of the teacher's layer inputs: pass "
            "calibration=collect_input_statistics(teacher, batches, layer_names), or decompositions=."
        )
    return decompose_layers(teacher, names, init, calibration, alpha)

"""Nested-rank distillation: which ranks of one factorized student each batch distils, and the loss over them.

Each batch distils one or a few truncated views of the same student (`models.truncated_view`) against the same
teacher targets: `strategy="sample"` draws `samples_per_step` distinct ranks of the list (uniformly, or uniformly in
log rank) from a generator seeded by (seed, epoch, batch), so a resumed run draws what an uninterrupted one drew;
`strategy="sum"` takes every rank, weighted by `weights`. The largest rank can always be included
(`always_largest`), so the full student is trained at every step, and the smallest one too (`always_smallest`: the
sandwich rule of slimmable networks, Yu & Huang 2019: the smallest and the largest width bound every other one).
`inplace_weight` adds in-place distillation (the same paper): every smaller view of a batch also distils the
largest view's logits (detached), a KD term of that weight beside its distillation from the teacher.
"""

import math
from dataclasses import dataclass

import numpy as np

from .sampling import derived_seed


__all__ = ["NESTED_DISTRIBUTIONS", "NESTED_STRATEGIES", "NestedRankSchedule"]

NESTED_STRATEGIES = ("sample", "sum")
NESTED_DISTRIBUTIONS = ("uniform", "log_uniform")


@dataclass(frozen=True)
class NestedRankSchedule:
    """The ranks each batch of nested training distils, and their loss weights.

    Attributes:
        ranks: the sweep's ranks, distinct positive integers (sorted here).
        strategy: ``"sample"`` (some ranks per batch) or ``"sum"`` (all of them, weighted).
        samples_per_step: with ``"sample"``, how many distinct ranks per batch (at most len(ranks)).
        distribution: with ``"sample"``, ``"uniform"`` over the list or ``"log_uniform"`` (weights 1 / rank,
            normalised: small ranks, where the curve bends, drawn more often).
        weights: with ``"sum"``, one loss weight per rank (default: all 1); with ``"sample"``, unused.
        always_largest: also distil the largest rank at every batch (with ``"sample"``).
        always_smallest: also distil the smallest rank at every batch (with ``"sample"``; the sandwich rule).
        inplace_weight: weight (>= 0) of each smaller view's KD from the largest view's logits, in batches where the
            largest view is drawn (0: none).
        seed: the draws' seed.
    """

    ranks: tuple[int, ...]
    strategy: str = "sample"
    samples_per_step: int = 1
    distribution: str = "uniform"
    weights: tuple[float, ...] | None = None
    always_largest: bool = True
    always_smallest: bool = False
    inplace_weight: float = 0.0
    seed: int = 0

    def __post_init__(self):
        ranks = tuple(sorted(self.ranks))
        if (
            not ranks
            or len(set(ranks)) != len(ranks)
            or any(isinstance(r, bool) or int(r) != r or r < 1 for r in ranks)
        ):
            raise ValueError(f"ranks must be distinct positive integers, got {list(self.ranks)}.")
        object.__setattr__(self, "ranks", ranks)
        if self.strategy not in NESTED_STRATEGIES:
            raise ValueError(f"strategy must be one of {list(NESTED_STRATEGIES)}, got {self.strategy!r}.")
        if self.distribution not in NESTED_DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {list(NESTED_DISTRIBUTIONS)}, got {self.distribution!r}.")
        if not 1 <= self.samples_per_step <= len(ranks):
            raise ValueError(
                f"samples_per_step must be in [1, {len(ranks)}] (the number of ranks), got {self.samples_per_step!r}."
            )
        fixed = len(self._fixed()) if self.strategy == "sample" else 0
        if self.samples_per_step < fixed:
            raise ValueError(
                f"samples_per_step must be at least {fixed} with always_smallest (the smallest and the largest rank "
                f"every batch), got {self.samples_per_step!r}."
            )
        if not (math.isfinite(self.inplace_weight) and self.inplace_weight >= 0):
            raise ValueError(f"inplace_weight must be a finite number >= 0, got {self.inplace_weight!r}.")
        if self.weights is not None:
            if len(self.weights) != len(ranks):
                raise ValueError(
                    f"weights must hold one weight per rank ({len(ranks)} for ranks {list(ranks)}), got "
                    f"{len(self.weights)}: {list(self.weights)}."
                )
            if not all(math.isfinite(w) and w >= 0 for w in self.weights) or not any(w > 0 for w in self.weights):
                raise ValueError(f"weights must be finite, >= 0 and not all 0, got {list(self.weights)}.")

    def views(self, epoch: int, batch: int) -> list[tuple[int, float]]:
        """`(rank, loss weight)` of every view batch `batch` (1-based) of epoch `epoch` distils, largest first."""
        if self.strategy == "sum":
            weights = self.weights or (1.0,) * len(self.ranks)
            return [(r, float(w)) for r, w in sorted(zip(self.ranks, weights), reverse=True) if w > 0]
        rng = np.random.default_rng(derived_seed(self.seed, epoch, batch))
        chosen = self._fixed()
        candidates = [rank for rank in self.ranks if rank not in chosen]
        count = self.samples_per_step - len(chosen)
        if count > 0 and candidates:
            p = np.array([1.0 / r if self.distribution == "log_uniform" else 1.0 for r in candidates])
            picked = rng.choice(len(candidates), size=min(count, len(candidates)), replace=False, p=p / p.sum())
            chosen += [candidates[i] for i in picked]
        return [(r, 1.0) for r in sorted(chosen, reverse=True)]

    def _fixed(self) -> list[int]:
        """The ranks every sampled batch distils: the largest (`always_largest`), the smallest (`always_smallest`)."""
        fixed = [self.ranks[-1]] if self.always_largest else []
        if self.always_smallest and self.ranks[0] not in fixed:
            fixed.append(self.ranks[0])
        return fixed

"""Which ranks to train (`--ranks auto`): a coarse grid first, then a rank where the region's ends or the knee are
still uncertain, one round at a time.

A round reads the students measured so far (their per-example correctness on the test split), fits the curve, and
bootstraps the intervals of r_low, r_high and the knee as the report does. The bootstrap interval is the test set's
sampling noise on the fitted curve; it says nothing of the interpolation between two measured ranks (a curve
measured at 4 and 16 gives a narrow interval for a crossing PCHIP places at 11, wherever the truth lies between).
So a quantity is settled when every gap between consecutive measured ranks that overlaps its interval, or holds
its estimate, spans at most `tolerance` octaves of rank (log2(b / a) <= tolerance) or has no integer rank inside.
Otherwise the widest such gap gets the next rank (the geometric mean of its ends, rounded); a threshold not reached
by the largest measured rank asks for a larger one, one already reached at the smallest measured rank for a smaller
one.

Ranks whose training-free preview already reaches the teacher (`untrained`) need no training: they are measured at
initialisation, at the cost of an evaluation, outside the student budget, and the coarse grid stops below the
smallest of them.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .bootstrap import bootstrap_intervals
from .summary import summarize_checked
from .validation import check_thresholds


__all__ = ["RankProposal", "SEARCH_TARGETS", "coarse_grid", "preview_at_teacher", "propose_ranks", "search_ranks"]

SEARCH_TARGETS = ("r_low", "r_high", "knee")


@dataclass(frozen=True)
class RankProposal:
    """A rank to train, the quantity it serves (`"grid"` for the coarse grid, `"preview"` for a rank measured
    untrained because its preview reached the teacher), why, in words, and the round that chose it (0: the coarse
    grid)."""

    rank: int
    target: str
    reason: str
    round: int = 0

    def to_dict(self) -> dict:
        return {"rank": self.rank, "round": self.round, "target": self.target, "reason": self.reason}


def coarse_grid(max_rank: int, base: int = 4) -> list[int]:
    """The first round: 1, base, base**2, ... below `max_rank`, then `max_rank` (1, 4, 16, 48 for 48)."""
    if isinstance(max_rank, bool) or not isinstance(max_rank, int) or max_rank < 1:
        raise ValueError(f"max_rank must be an integer >= 1; got {max_rank!r}.")
    ranks, rank = [], 1
    while rank < max_rank:
        ranks.append(rank)
        rank *= base
    return ranks + [max_rank]


def preview_at_teacher(previews: dict[int, float], level: float) -> dict[int, float]:
    """The ranks whose training-free preview is at the teacher: the longest tail of the previewed ranks (rank ->
    accuracy as a fraction of the teacher's) whose every preview is >= `level`; rank -> its preview, empty if the
    largest previewed rank is below `level` (a level above 1 keeps every rank trained unless a preview beats the
    teacher by that much)."""
    tail: dict[int, float] = {}
    for rank in sorted(previews, reverse=True):
        if not previews[rank] >= level:
            break
        tail[rank] = previews[rank]
    return dict(sorted(tail.items()))


def _between(a: int, b: int) -> int | None:
    """An integer rank strictly between measured ranks `a` < `b` (their rounded geometric mean), None if none."""
    if b - a <= 1:
        return None
    return min(max(round(math.sqrt(a * b)), a + 1), b - 1)


def _proposal(target: str, point, interval, ranks: list[int], max_rank: int, tolerance: float, levels: tuple):
    """The rank `target` asks for next, and why; (None, why it is settled) when it asks for none."""
    lo, hi, _ = interval
    smallest, largest = ranks[0], ranks[-1]
    name = {"r_low": f"r_{round(levels[0] * 100)}", "r_high": f"r_{round(levels[1] * 100)}", "knee": "knee"}[target]
    if point is None:
        if target != "knee" and largest < max_rank:
            rank = min(max_rank, 2 * largest)
            return rank, f"{name} not reached by the largest rank measured, {largest}"
        return None, f"{name} undefined"
    if target != "knee" and point <= smallest and smallest > 1:
        return smallest // 2, f"{name} already reached at the smallest rank measured, {smallest}"
    text = f"{name} {point:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if lo is not None else " (no interval)")
    # Where the quantity may lie: its interval (sampling noise) and the measured ranks around its estimate (between
    # them the curve is interpolated). The widest gap between measured ranks there is the next to split.
    low_end, high_end = min(point, lo if lo is not None else point), max(point, hi if hi is not None else point)
    index = int(np.searchsorted(ranks, point, side="right"))  # ranks[index - 1] <= point < ranks[index]
    bracket = (ranks[max(index - 1, 0)], ranks[min(index, len(ranks) - 1)])
    gaps = [
        (math.log2(b / a), a, b)
        for a, b in zip(ranks, ranks[1:])
        if (a < high_end and b > low_end) or (a, b) == bracket
    ]
    gaps = [(width, a, b) for width, a, b in gaps if width > tolerance and _between(a, b) is not None]
    if not gaps:
        return None, f"{text} settled (measured ranks within {tolerance:g} octaves of each other around it)"
    width, a, b = max(gaps)
    return _between(a, b), f"{text}: the measured ranks {a} and {b} around it are {width:.2g} octaves apart"


def propose_ranks(
    ranks,
    student_correct,
    teacher_correct,
    max_rank: int,
    tolerance: float,
    low: float = 0.85,
    high: float = 0.95,
    num_samples: int = 200,
    seed: int = 0,
    exclude=(),
    round: int = 1,
) -> tuple[list[RankProposal], list[str]]:
    """The next round's ranks, at most one per quantity of `SEARCH_TARGETS`, and a line per settled quantity.

    Args:
        ranks: the measured ranks (at least two, distinct); `student_correct`: `(len(ranks), num_examples)` 0/1
            correctness of each, rows in `ranks` order; `teacher_correct`: `(num_examples,)`.
        max_rank: the largest rank a student may have; `tolerance`: the widest gap between measured ranks left
            where a quantity may lie, in octaves (> 0).
        low, high: the region's thresholds (fractions of the teacher's accuracy); `num_samples`, `seed`: the
            bootstrap's resamples and seed (the same seed gives the same proposals).
        exclude: ranks never to propose (tried already: a student that failed); `round`: the proposals' round.

    Returns:
        (proposals, settled): `proposals` in the order of `SEARCH_TARGETS`, no rank twice nor one already measured;
        empty when every quantity is settled.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise ValueError(f"tolerance must be a number of octaves > 0; got {tolerance!r}.")
    low, high = check_thresholds(low, high)
    order = np.argsort(np.asarray(ranks))
    ranks = [int(ranks[i]) for i in order]
    student_correct = np.asarray(student_correct, dtype=float)[order]  # (k, num_examples)
    teacher_correct = np.asarray(teacher_correct, dtype=float)  # (num_examples,)
    if len(ranks) < 2:
        raise ValueError(f"need at least two measured ranks to propose more; got {ranks}.")
    intervals = bootstrap_intervals(ranks, student_correct, teacher_correct, num_samples, seed, low, high)
    summary = summarize_checked(
        np.asarray(ranks, dtype=float), student_correct.mean(axis=1), float(teacher_correct.mean()), low, high, 2
    )
    proposals, settled, taken = [], [], set(ranks) | {int(rank) for rank in exclude}
    for target in SEARCH_TARGETS:
        rank, why = _proposal(
            target, getattr(summary, target), intervals[target], ranks, max_rank, tolerance, (low, high)
        )
        if rank is None or rank in taken:
            settled.append(why if rank is None else f"{why} (rank {rank} already chosen)")
            continue
        taken.add(rank)
        proposals.append(RankProposal(rank, target, why, round))
    return proposals, settled


def search_ranks(
    measure: Callable[[list[int]], dict[int, np.ndarray]],
    teacher_correct,
    max_rank: int,
    tolerance: float,
    max_students: int,
    low: float = 0.85,
    high: float = 0.95,
    seed: int = 0,
    initial=(),
    untrained: dict[int, str] | None = None,
    report: Callable[[str], None] = lambda line: None,
) -> list[RankProposal]:
    """The adaptive search: the coarse grid of `max_rank` (with the ranks of `initial`), then `propose_ranks`
    rounds until every quantity is settled or `max_students` ranks were trained. Returns every chosen rank, in
    order.

    `untrained`: rank -> why it needs no training (its preview reached the teacher). Those ranks join the coarse
    round, are not counted in `max_students`, and the coarse grid stops below the smallest of them.
    `measure(ranks)` trains the students of `ranks` (or, for an `untrained` rank, measures it at initialisation; or
    reads those finished earlier: a resumed sweep measures the same ranks again and gets the same answers, so it
    chooses the same ranks) and returns rank -> `(num_examples,)` 0/1 correctness for each that finished (a failed
    one is left out, and never proposed again). `report` gets a line per round."""
    if isinstance(max_students, bool) or not isinstance(max_students, int) or max_students < 3:
        raise ValueError(f"max_students must be an integer >= 3 (a curve needs three ranks); got {max_students!r}.")
    untrained = {int(rank): why for rank, why in (untrained or {}).items()}
    cut = min(untrained, default=max_rank + 1)  # the coarse grid trains ranks below the previews at the teacher
    grid = sorted({r for r in coarse_grid(max_rank) if r < cut} | {int(r) for r in initial if int(r) not in untrained})
    if len(grid) > max_students:  # keep the ends and the smallest ranks: the region is usually low
        grid = sorted(grid[: max_students - 1] + [grid[-1]])
    chosen = [RankProposal(rank, "grid", "coarse grid", 0) for rank in grid]
    chosen += [RankProposal(rank, "preview", why, 0) for rank, why in sorted(untrained.items())]
    chosen.sort(key=lambda proposal: proposal.rank)
    report(f"rank search, round 0: coarse grid {grid}" + (f", untrained {sorted(untrained)}" if untrained else ""))
    correct = dict(measure([proposal.rank for proposal in chosen]))

    def trained() -> int:
        return sum(proposal.target != "preview" for proposal in chosen)

    for round in range(1, max_students + 1):
        if trained() >= max_students or len(correct) < 2:
            break
        measured = sorted(correct)
        proposals, settled = propose_ranks(
            measured, [correct[rank] for rank in measured], teacher_correct, max_rank, tolerance, low, high,
            seed=seed, exclude=[p.rank for p in chosen], round=round,
        )  # fmt: skip
        proposals = proposals[: max_students - trained()]
        for line in settled:
            report(f"rank search, round {round}: {line}")
        if not proposals:
            break
        for proposal in proposals:
            report(f"rank search, round {round}: rank {proposal.rank} ({proposal.reason})")
        chosen += proposals
        correct.update(measure([p.rank for p in proposals]))
    return chosen

"""`--ranks auto`: the rank students chosen round by round (`analysis.rank_search.search_ranks`), each round
trained in lock-step like any rank students, and the choices recorded in results.json (`rank_search`)."""

import numpy as np

from ..analysis.rank_search import search_ranks
from .context import SweepContext
from .students import run_student_group, student_groups, student_max_rank


__all__ = ["DEFAULT_MAX_STUDENTS", "run_rank_search"]

DEFAULT_MAX_STUDENTS = 6


def run_rank_search(ctx: SweepContext, seed: int, initial: list[int]) -> list[int]:
    """Search the ranks with students of `seed` (`initial`, e.g. the budgets' uniform ranks, join the coarse grid);
    returns the ranks chosen, in order. A resumed sweep reads its finished students back, so the search takes the
    same decisions again and trains only what is missing."""
    teacher_correct = np.asarray(ctx.results.teacher.correct, dtype=float)  # (num_examples,)

    def measure(ranks: list[int]) -> dict[int, np.ndarray]:
        finished = ctx.store.finished()
        pending = [rank for rank in ranks if (rank, seed) not in finished]
        for group in student_groups(ctx, pending, seed):
            run_student_group(ctx, group, seed)
        done = {r.rank: r for r in ctx.results.ranks if r.seed == seed and r.status == "done"}
        return {rank: np.asarray(done[rank].correct, dtype=float) for rank in ranks if rank in done}

    chosen = search_ranks(
        measure,
        teacher_correct,
        student_max_rank(ctx),
        ctx.sweep.rank_tolerance,
        ctx.sweep.max_students or DEFAULT_MAX_STUDENTS,
        seed=ctx.args.seed,
        initial=initial,
        report=ctx.accelerator.print,
    )
    ctx.results.rank_search = [proposal.to_dict() for proposal in chosen]
    ctx.store.write()
    return [proposal.rank for proposal in chosen]

"""`--ranks auto`: the rank students chosen round by round (`analysis.rank_search.search_ranks`), each round
trained in lock-step like any rank students (a rank whose preview already reaches the teacher measured untrained),
and the choices recorded in results.json (`rank_search`)."""

import numpy as np

from ..analysis.rank_search import preview_at_teacher, search_ranks
from .context import SweepContext
from .students import run_student_group, run_untrained_group, student_groups, student_max_rank


__all__ = ["DEFAULT_MAX_STUDENTS", "run_rank_search", "train_searched_ranks", "untrained_ranks"]

DEFAULT_MAX_STUDENTS = 6


def untrained_ranks(ctx: SweepContext) -> dict[int, str]:
    """rank -> why it needs no distillation: the previewed ranks (of the sweep's init) from the smallest whose
    preview, and every larger one's, reaches `--rank_search_preview_level` of the teacher. Empty without a preview
    of that init, and for bridged students (they are not previewed)."""
    level, init = ctx.sweep.rank_search_preview_level, ctx.sweep.init
    if ctx.sweep.student_bridge != "none":
        return {}
    previews = {p.rank: p.normalized_accuracy for p in ctx.results.previews if p.init == init}
    return {
        rank: f"{init} preview at {value:.1%} of the teacher (level {level:g}): measured untrained"
        for rank, value in preview_at_teacher(previews, level).items()
    }


def train_searched_ranks(ctx: SweepContext, ranks: list[int], seed: int, untrained) -> None:
    """The students of `ranks` with `seed` not finished yet: those in `untrained` measured at initialisation, the
    others distilled in lock-step groups."""
    finished = ctx.store.finished()
    pending = [rank for rank in ranks if (rank, seed) not in finished]
    if kept := [rank for rank in pending if rank in untrained]:
        run_untrained_group(ctx, kept, seed)
    for group in student_groups(ctx, [rank for rank in pending if rank not in untrained], seed):
        run_student_group(ctx, group, seed)


def run_rank_search(ctx: SweepContext, seed: int, initial: list[int]) -> list[int]:
    """Search the ranks with students of `seed` (`initial`, e.g. the budgets' uniform ranks, join the coarse grid);
    returns the ranks chosen, in order. A resumed sweep reads its finished students back, so the search takes the
    same decisions again and trains only what is missing."""
    teacher_correct = np.asarray(ctx.results.teacher.correct, dtype=float)  # (num_examples,)
    untrained = untrained_ranks(ctx)

    def measure(ranks: list[int]) -> dict[int, np.ndarray]:
        train_searched_ranks(ctx, ranks, seed, untrained)
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
        untrained=untrained,
        report=ctx.accelerator.print,
    )
    ctx.results.rank_search = [proposal.to_dict() for proposal in chosen]
    ctx.store.write()
    return [proposal.rank for proposal in chosen]

"""The training-free preview: every rank's student evaluated right after initialisation, before any distillation,
for each of `--preview_inits`. Students come from the teacher's decompositions, computed once per init, so the
whole preview costs one decomposition per init and one evaluation pass per group of students."""

from ..models import count_parameters
from ..results import PreviewResult
from .context import SweepContext
from .students import context_student, seeded


__all__ = ["run_preview_stage"]


def run_preview_stage(ctx: SweepContext, ranks: list[int]) -> None:
    """Measure and record the preview of every (init, rank) not recorded yet (results.json after each init)."""
    teacher = ctx.results.teacher
    done = {(p.init, p.rank) for p in ctx.results.previews}
    size = ctx.sweep.lockstep_group_size or len(ranks) or 1
    for init in ctx.sweep.preview_inits:
        pending = [rank for rank in ranks if (init, rank) not in done]
        if not pending:
            continue
        decompositions = ctx.factorization.decompositions(init)
        for first in range(0, len(pending), size):
            group = pending[first : first + size]
            students = {}
            for rank in group:
                with seeded(ctx.args.seed, rank):
                    students[rank] = context_student(ctx, rank, init, decompositions)
            evaluations = ctx.evaluate(students, f"preview: {init} students at init, ranks {group}", noise=False)
            for rank in group:
                evaluation = evaluations[rank]
                ctx.results.record_preview(
                    PreviewResult(
                        init=init,
                        rank=rank,
                        parameters=count_parameters(students[rank]),
                        accuracy=evaluation.accuracy,
                        normalized_accuracy=evaluation.accuracy / teacher.accuracy,
                        correct=evaluation.correct.astype(int).tolist(),
                    )
                )
            del students
        ctx.results.factorization = ctx.factorization.record(ctx.results.factorization)
        ctx.store.write()
        curve = ", ".join(
            f"{p.rank}: {p.normalized_accuracy:.0%}"
            for p in ctx.results.previews
            if p.init == init and p.rank in ranks
        )
        ctx.accelerator.print(f"preview ({init} at init, of teacher): {curve}")

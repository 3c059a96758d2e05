"""`--curve nested` / `both`: one student at the largest rank, distilled through truncated views of its factors
(`distillation.NestedRankSchedule`), then every rank cut from it as an ordinary student (`models.truncated_student`),
optionally fine-tuned alone, evaluated, saved and recorded like a lock-step student."""

import copy
from dataclasses import asdict

from ..distillation import NestedRankSchedule, TrainResult
from ..models import truncated_student
from .context import SweepContext
from .students import context_student, distil, rank_key, seed_arguments, seeded, student_dir, student_record


__all__ = ["nested_dir", "run_nested_stage"]


def nested_dir(rank: int, seed: int, primary_seed: int, beside_lockstep: bool) -> str:
    """`rank-008` (the sweep's curve), or `nested-rank-008` beside the lock-step students (`--curve both`)."""
    name = student_dir(rank, seed, primary_seed)
    return f"nested-{name}" if beside_lockstep else name


def trained_dir(seed: int) -> str:
    """Where the trained nested student of `seed` is kept until its ranks are recorded."""
    return f"nested-trained-seed-{seed}"


def schedule_of(ctx: SweepContext, ranks: list[int], seed: int) -> NestedRankSchedule:
    sweep = ctx.sweep
    return NestedRankSchedule(
        tuple(ranks),
        strategy=sweep.nested_strategy,
        samples_per_step=min(sweep.nested_samples, len(ranks)),
        distribution=sweep.nested_distribution,
        weights=tuple(sweep.nested_weights) if sweep.nested_weights else None,
        always_smallest=sweep.nested_sandwich,
        inplace_weight=sweep.nested_inplace_weight,
        seed=seed,
    )


def run_nested_stage(ctx: SweepContext, ranks: list[int], seed: int) -> None:
    """Train (or resume) the nested student of `seed`, then record every rank of `ranks` not recorded yet."""
    beside = ctx.sweep.curve == "both"
    records = ctx.results.nested if beside else ctx.results.ranks
    finished = {r.rank for r in records if r.seed == seed and r.status == "done"}
    pending = [rank for rank in ranks if rank not in finished]
    if not pending:
        return
    top = max(ranks)
    init = ctx.sweep.init
    with seeded(seed, "nested", top):
        student = context_student(ctx, top, init, ctx.factorization.decompositions(init))
    schedule = schedule_of(ctx, ranks, seed)
    identity = {"stage": "nested", "seed": seed, "ranks": sorted(ranks)}
    kept = ctx.store.kept_weights(trained_dir(seed), identity)
    if kept is not None:  # trained by an earlier run, which was stopped after it (e.g. during the fine-tune)
        weights, record = kept
        student.load_state_dict(weights)
        outcome = TrainResult(**{**record, "loss_history": [tuple(p) for p in record["loss_history"]]})
        ctx.accelerator.print(f"resuming: the nested student of seed {seed} is trained ({outcome.steps} steps)")
    else:
        description = f"nested distillation of ranks {sorted(ranks)}, seed {seed}"
        checkpoint = ctx.store.checkpoint(identity)
        outcome = distil(ctx, {"nested": student}, seed, checkpoint, description, nested=schedule)["nested"]
        ctx.store.keep_weights(trained_dir(seed), identity, student, asdict(outcome))
    ctx.results.nested_training[str(seed)] = {
        "rank": top,
        "ranks": sorted(ranks),
        "status": outcome.status,
        "steps": outcome.steps,
        "train_seconds": outcome.train_seconds,
        "strategy": schedule.strategy,
        "samples_per_step": schedule.samples_per_step,
        "distribution": schedule.distribution,
        "weights": list(schedule.weights) if schedule.weights else None,
    }
    model = ctx.accelerator.unwrap_model(student)
    students = {rank: truncated_student(model, rank) for rank in pending}
    steps = ctx.sweep.nested_finetune_steps
    outcomes = {rank: outcome for rank in pending}
    if steps > 0 and outcome.status == "done":
        args = copy.copy(seed_arguments(ctx, seed))
        args.max_steps = steps
        tuned = distil_fine_tune(ctx, students, seed, args)
        outcomes = {rank: _combined(outcome, tuned[rank]) for rank in pending}
    done = {rank: s for rank, s in students.items() if outcomes[rank].status == "done"}
    evaluations = ctx.evaluate(done, "evaluating nested students")
    primary = ctx.results.primary_seed
    for rank, truncated in students.items():
        record = student_record(
            ctx,
            rank,
            seed,
            truncated,
            outcomes[rank],
            evaluations.get(rank),
            nested_dir(rank, seed, primary, beside),
            curve="nested",
            nested_rank=top,
            finetune_steps=steps if outcome.status == "done" else 0,
        )
        (ctx.results.record_nested_student if beside else ctx.results.record_student)(record)
        ctx.store.write()
    ctx.store.remove_checkpoint()
    ctx.store.discard(trained_dir(seed))


def distil_fine_tune(ctx: SweepContext, students: dict, seed: int, args) -> dict:
    """Fine-tune the truncated students alone, in lock-step, for `args.max_steps` steps."""
    checkpoint = ctx.store.checkpoint({"stage": "nested-finetune", "seed": seed, "ranks": sorted(students)})
    description = f"fine-tuning nested ranks {sorted(students)}, seed {seed}"
    outcomes = distil(ctx, {rank_key(r): s for r, s in students.items()}, seed, checkpoint, description, args=args)
    return {rank: outcomes[rank_key(rank)] for rank in students}


def _combined(nested: TrainResult, tuned: TrainResult) -> TrainResult:
    """A rank's record: the fine-tune's status and history, its steps and seconds on top of the nested run's."""
    return TrainResult(
        tuned.status,
        nested.steps + tuned.steps,
        tuned.train_seconds,
        tuned.error,
        tuned.loss_history,
        tuned.examples_per_process,
    )

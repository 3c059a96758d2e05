"""The rank students: which ranks are valid, how a student of each kind is built from the teacher, and the
lock-step training of a group of them (one seed), with their evaluation and records."""

import contextlib
import copy

import torch
from torch import nn

from ..distillation import LockstepTrainer, TrainResult, derived_seed
from ..models import (
    BridgedViTForImageClassification,
    count_parameters,
)
from ..results import StudentConfig, StudentResult
from .arguments import SweepArguments, SweepError
from .context import SweepContext
from .families import encoder_linears, student_class, sweep_layout, teacher_modality
from .measurements import diagnose, latency, robustness


__all__ = [
    "build_student",
    "context_student",
    "distil",
    "group_checkpoint",
    "run_student_group",
    "run_untrained_group",
    "seed_arguments",
    "seeded",
    "student_dir",
    "student_groups",
    "student_max_rank",
    "student_record",
]


def student_max_rank(ctx: SweepContext) -> int:
    """Largest rank valid for every factorized layer of the students: min over the teacher's encoder linears (the
    `nn.Linear`s inside its blocks) of min(in, out), and at most a narrow student's width."""
    teacher, sweep = ctx.teacher, ctx.sweep
    try:
        linears = encoder_linears(teacher, ctx.layout)
    except ValueError as error:  # a --block_pattern that matches no module
        raise SweepError(f"--block_pattern {sweep.block_pattern!r}: {error}") from error
    if not linears:
        raise SweepError(f"the teacher's blocks hold no nn.Linear layer to factorize ({type(teacher).__name__}).")
    dims = [min(m.in_features, m.out_features) for m in linears.values()]
    return min(min(dims), sweep.student_hidden_size or min(dims))


def build_student(
    teacher: nn.Module, rank: int | dict[str, int], sweep: SweepArguments, init: str = "svd", decompositions=None
) -> nn.Module:
    """The student of `rank` (one rank, or per-layer ranks as a mapping of exact-name patterns) the sweep's arguments
    ask for, initialised from `teacher` with `init` (from its precomputed `decompositions` of that init when given):
    the `LowRank*` student of the teacher's task for every family, ViT included, or a Lift / WideLast ViT student.
    The stages call it through `context_student` (the layout derived once, in the context)."""
    return _build(teacher, rank, sweep, sweep_layout(sweep), init, decompositions)


def context_student(ctx: SweepContext, rank: int | dict[str, int], init: str = "svd", decompositions=None):
    """`build_student` for a stage: the context's teacher, arguments and block layout."""
    return _build(ctx.teacher, rank, ctx.sweep, ctx.layout, init, decompositions)


def _build(teacher, rank, sweep, layout, init, decompositions) -> nn.Module:
    factors = {"init": init, "decompositions": decompositions}
    if sweep.student_bridge == "none":
        return student_class(teacher_modality(teacher.config)).from_teacher(
            teacher, rank=rank, exclude_modules=sweep.exclude_modules, layout=layout, **factors
        )
    return BridgedViTForImageClassification.from_teacher(
        teacher,
        bridge=sweep.student_bridge,
        rank=rank,
        hidden_size=sweep.student_hidden_size,
        num_attention_heads=sweep.student_num_attention_heads,
    )


@contextlib.contextmanager
def seeded(seed: int, *keys):
    """Draw from a torch RNG seeded by (seed, *keys) inside the block (the global RNG is left as it was): a randomly
    initialised student is then the same whichever stages ran before it in this process (a resumed sweep skips
    some)."""
    stream = derived_seed(seed, *map(_as_int, keys))
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(stream)
        yield


def _as_int(key) -> int:
    return key if isinstance(key, int) else int.from_bytes(str(key).encode(), "little") % 2**63


RANK_PREFIX = "rank-"


def rank_key(rank: int) -> str:
    """`rank-008`: a rank student's name, for its directory and its place in a lock-step group."""
    return f"{RANK_PREFIX}{rank:03d}"


def student_dir(rank: int, seed: int, primary_seed: int) -> str:
    """`rank-008` for the primary seed, `rank-008-seed-1` for the others."""
    return rank_key(rank) if seed == primary_seed else f"{rank_key(rank)}-seed-{seed}"


def group_checkpoint(ctx: SweepContext, seed: int):
    """The mid-training checkpoint of the student groups of `seed` (one group runs at a time)."""
    return ctx.store.checkpoint({"stage": "students", "seed": seed})


def student_groups(ctx: SweepContext, pending: list[int], seed: int) -> list[list[int]]:
    """`pending` in lock-step groups of `lockstep_group_size`, the ranks an interrupted group's checkpoint holds
    first and together, so that they resume from it whatever the ranks or the group size are now."""
    held = {int(key.removeprefix(RANK_PREFIX)) for key in group_checkpoint(ctx, seed).keys()}
    resumed, rest = [r for r in pending if r in held], [r for r in pending if r not in held]
    size = ctx.sweep.lockstep_group_size or len(pending) or 1
    return ([resumed] if resumed else []) + [rest[first : first + size] for first in range(0, len(rest), size)]


def seed_arguments(ctx: SweepContext, seed: int):
    """The training arguments with `seed` (a shallow copy: TrainingArguments.__post_init__ must not run again)."""
    if seed == ctx.args.seed:
        return ctx.args
    args = copy.copy(ctx.args)
    args.seed = seed
    return args


def distil(
    ctx: SweepContext,
    students: dict[str, nn.Module],
    seed: int,
    checkpoint,
    description: str,
    args=None,
    nested=None,
) -> dict:
    """Distil `students` (key -> model) from the teacher in lock-step with `seed` (the sweep's training arguments
    for that seed, or `args`; through truncated views with a `nested` schedule), checkpointed in `checkpoint`; returns
    key -> the trainer's outcome. Every stage's training goes through here."""
    trainer = LockstepTrainer(
        ctx.accelerator,
        args if args is not None else seed_arguments(ctx, seed),
        teacher=ctx.teacher,
        description=description,
        block_layout=ctx.layout,
        nested=nested,
    )
    return trainer.train(students, ctx.processed["train"], checkpoint, ctx.processed.get("validation"))


def _group_students(ctx: SweepContext, group: list[int], seed: int) -> dict[int, nn.Module]:
    """rank -> the student of `group` with `seed`, as initialised (`--init`, from the teacher's decompositions)."""
    init = ctx.sweep.init
    decompositions = ctx.factorization.decompositions(init) if ctx.sweep.student_bridge == "none" else None
    students = {}
    for rank in group:
        with seeded(seed, rank):
            students[rank] = context_student(ctx, rank, init, decompositions)
    return students


def run_student_group(ctx: SweepContext, group: list[int], seed: int) -> None:
    """Distil the students of `group` with `seed` in lock-step, evaluate them, save each and record it."""
    students = _group_students(ctx, group, seed)
    outcomes = distil(
        ctx,
        {rank_key(rank): student for rank, student in students.items()},
        seed,
        group_checkpoint(ctx, seed),
        f"distilling ranks {group}, seed {seed}",
    )
    done = {rank: s for rank, s in students.items() if outcomes[rank_key(rank)].status == "done"}
    evaluations = ctx.evaluate(done, "evaluating students")
    for rank, student in students.items():
        record = student_record(
            ctx,
            rank,
            seed,
            student,
            outcomes[rank_key(rank)],
            evaluations.get(rank),
            student_dir(rank, seed, ctx.results.primary_seed),
        )
        ctx.results.record_student(record)
        ctx.store.write()
    ctx.store.remove_checkpoint()  # every student of the group is recorded


def run_untrained_group(ctx: SweepContext, group: list[int], seed: int) -> None:
    """Evaluate, save and record the students of `group` as initialised, with no distillation (0 optimizer steps):
    `--ranks auto`'s ranks whose training-free preview already reaches the teacher."""
    students = _group_students(ctx, group, seed)
    evaluations = ctx.evaluate(students, f"evaluating untrained students (preview at the teacher), ranks {group}")
    for rank, student in students.items():
        outcome = TrainResult(status="done", steps=0, train_seconds=0.0)
        directory = student_dir(rank, seed, ctx.results.primary_seed)
        ctx.results.record_student(
            student_record(ctx, rank, seed, student, outcome, evaluations[rank], directory, untrained=True)
        )
        ctx.store.write()


def student_record(ctx: SweepContext, rank: int, seed: int, student, outcome, evaluation, directory: str, **made):
    """The `StudentResult` of a trained student (`outcome`: its `TrainResult`); when it finished (`evaluation`
    given), saved into `directory` with its measurements and diagnostics. `made`: how it was made, beyond the
    sweep's arguments (`StudentConfig` fields: curve, nested_rank, finetune_steps, untrained)."""
    teacher = ctx.results.teacher
    parameters = count_parameters(ctx.accelerator.unwrap_model(student))
    record = StudentResult(
        rank=rank,
        status=outcome.status,
        error=outcome.error,
        seed=seed,
        parameters=parameters,
        compression=teacher.parameters / parameters,
        steps=outcome.steps,
        train_seconds=outcome.train_seconds,
        examples_per_process=outcome.examples_per_process,
        loss_history=outcome.loss_history,
        validation_history=outcome.validation_history,
        best_step=outcome.best_step,
        stopped_step=outcome.stopped_step,
        skipped_steps=outcome.skipped_steps,
        config=StudentConfig(
            rank=rank,
            bridge=ctx.sweep.student_bridge,
            hidden_size=ctx.sweep.student_hidden_size,
            exclude_modules=ctx.sweep.exclude_modules,
            distillation_mode=ctx.args.distillation_mode,
            teacher=teacher.source,
            init=ctx.sweep.init,
            **made,
        ),
    )
    if evaluation is not None:
        record.model_dir = ctx.store.save_model(directory, student, ctx.processor)
        record.accuracy = evaluation.accuracy
        record.normalized_accuracy = evaluation.accuracy / teacher.accuracy
        record.correct = evaluation.correct.astype(int).tolist()
        for key, value in robustness(evaluation).items():
            setattr(record, key, value)
        record.diagnostics = diagnose(ctx, record.model_dir, student)
        record.latency = latency(ctx, student)
    return record

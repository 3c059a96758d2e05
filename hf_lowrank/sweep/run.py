"""`run_sweep`: the whole job, stage by stage (teacher, rank students in lock-step groups, CNN students), then the
report, the cards and the Hub, handed the results in memory.

It is resumable: every finished stage is recorded atomically in results.json; rerunning the same command keeps them
and redoes only what is unfinished.
"""

import contextlib
import time
from datetime import timedelta
from pathlib import Path

from accelerate import Accelerator, DistributedDataParallelKwargs, InitProcessGroupKwargs
from transformers import AutoConfig, enable_full_determinism, set_seed

from ..data import load_classification_data
from ..distillation import DistillationConfig
from ..hub import (
    HubPushError,
    connect_hub,
    pushed_line,
    render_cards,
    select_budget_students,
    select_students,
    upload_sweep,
    write_cards,
)
from ..report import build_report, summary_line, write_report
from ..results import SweepResults
from .argument_checks import check_arguments
from .arguments import SweepArguments, SweepError
from .budget_stage import budget_plans, run_budget_stage
from .cnn_stage import run_cnn_stage
from .context import SweepContext
from .embedded import default_ranks
from .factorization import TeacherFactorization
from .families import teacher_modality
from .fingerprint import fingerprint
from .nested_stage import run_nested_stage
from .preview_stage import run_preview_stage
from .rank_search_stage import run_rank_search, train_searched_ranks
from .store import TEACHER_DIR, SweepStore, check_writable
from .students import run_student_group, student_groups, student_max_rank
from .teacher_stage import run_teacher_stage, teacher_source


__all__ = ["build_accelerator", "check_arguments", "run_sweep"]


def build_accelerator(args: DistillationConfig) -> Accelerator:
    """The process group the training arguments ask for: accumulation, CPU, bf16 mixed precision, DDP timeout, and
    DDP's `find_unused_parameters` (True unless `--ddp_find_unused_parameters false`, as Trainer without gradient
    checkpointing: CLIP's and SigLIP's classifiers never read some of their parameters)."""
    find_unused = True if args.ddp_find_unused_parameters is None else args.ddp_find_unused_parameters
    return Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        cpu=args.use_cpu,
        mixed_precision="bf16" if args.bf16 else "no",
        kwargs_handlers=[
            InitProcessGroupKwargs(timeout=timedelta(seconds=args.ddp_timeout)),
            DistributedDataParallelKwargs(find_unused_parameters=find_unused),
        ],
    )


def _open(sweep: SweepArguments, args: DistillationConfig, command: str | None) -> SweepContext:
    """The arguments and the teacher's source checked; then the process group, the seed, and the sweep directory
    (new, or resumed when the fingerprint matches)."""
    check_arguments(sweep, args)
    accelerator = build_accelerator(args)
    output_dir = Path(args.output_dir)
    if accelerator.is_main_process:
        check_writable(output_dir)
    accelerator.wait_for_everyone()
    enable_full_determinism(args.seed) if args.full_determinism else set_seed(args.seed)
    store = SweepStore(output_dir, fingerprint(sweep, args, accelerator), accelerator, sweep.overwrite_output_dir)
    if store.results.command is None:
        store.results.command = command
    # The teacher's source is checked now, before any data is loaded, unless this sweep's teacher is finished (a
    # resume needs OUT/teacher only, not --teacher, which may be gone).
    source = None if store.teacher_finished() else teacher_source(sweep)
    if source is not None:
        modality = teacher_modality(source.config)
    elif store.teacher_finished():
        modality = teacher_modality(AutoConfig.from_pretrained(store.dir / TEACHER_DIR))
    else:
        modality = "image"  # the embedded teachers
    if modality == "image" and sweep.max_seq_length != SweepArguments.max_seq_length:
        raise SweepError(
            f"--max_seq_length {sweep.max_seq_length} has no effect: it applies to text teachers, and this teacher is "
            "an image classifier; leave it unset."
        )
    return SweepContext(sweep, args, accelerator, store, teacher_source=source, modality=modality)


@contextlib.contextmanager
def _timed(ctx: SweepContext, stage: str):
    """Record the wall seconds of `stage` in results.json (added to a resumed stage's earlier seconds)."""
    start = time.perf_counter()
    yield
    seconds = ctx.results.stage_seconds
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
    ctx.store.write()


def _student_stages(ctx: SweepContext) -> None:
    """The preview of every rank, then every (rank, seed) not finished yet, in lock-step groups (`student_groups`),
    and per seed the budget students (`--param_budget`, whose uniform ranks join the swept ones). With --ranks auto
    the preview covers the default grid, and the first seed's students are chosen by the rank search (the other
    seeds train the same ranks)."""
    ctx.factorization = TeacherFactorization(ctx)
    plans = budget_plans(ctx)  # before any work: a budget outside the valid range is refused now
    ranks = ctx.sweep.ranks or default_ranks(student_max_rank(ctx))
    ranks = sorted(set(ranks) | {plan.uniform_rank for plan in plans})
    with _timed(ctx, "preview"):
        run_preview_stage(ctx, ranks)
    ctx.factorization.release()
    if ctx.sweep.preview_only:
        return
    finished, searched = ctx.store.finished(), None
    for seed in ctx.sweep.seeds or [ctx.args.seed]:
        if ctx.sweep.curve in ("nested", "both"):
            with _timed(ctx, f"nested-seed-{seed}"):
                run_nested_stage(ctx, ranks, seed)
        if ctx.sweep.curve == "nested":
            continue
        if ctx.sweep.adaptive_ranks:  # the first seed searches; later seeds train (or keep untrained) its ranks
            with _timed(ctx, f"lockstep-seed-{seed}"):
                if searched is None:
                    searched = run_rank_search(ctx, seed, [plan.uniform_rank for plan in plans])
                else:
                    kept = {choice["rank"] for choice in ctx.results.rank_search if choice["target"] == "preview"}
                    train_searched_ranks(ctx, searched, seed, kept)
            run_budget_stage(ctx, plans, seed)
            continue
        pending = [rank for rank in ranks if (rank, seed) not in finished]
        if len(pending) < len(ranks):
            ctx.accelerator.print(
                f"resuming: seed {seed}, ranks {sorted(set(ranks) - set(pending))} are finished; training {pending}"
            )
        with _timed(ctx, f"lockstep-seed-{seed}"):
            for group in student_groups(ctx, pending, seed):
                run_student_group(ctx, group, seed)
        run_budget_stage(ctx, plans, seed)
    ctx.results.factorization = ctx.factorization.record(ctx.results.factorization)
    ctx.store.write()


def _publish(ctx: SweepContext) -> None:
    """Report and cards into the sweep directory, then (with --push_to_hub) the same cards to the Hub. Main
    process only; everything local is written before any upload, so a failed upload loses nothing."""
    results, args, output_dir = ctx.results, ctx.args, ctx.store.dir
    report = build_report(results)
    write_report(report, output_dir)
    target, chosen, budgets = None, [], []
    if args.push_to_hub:
        chosen = select_students(results, report, ctx.sweep.push_ranks)
        budgets = select_budget_students(results, ctx.sweep.push_ranks)
        try:
            target = connect_hub(output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)
        except HubPushError:
            write_cards(render_cards(results, report), output_dir)
            raise
    repo_ids = target.repo_ids(chosen) if target else None
    budget_ids = target.budget_repo_ids(budgets) if target else None
    cards = render_cards(results, report, repo_ids, target.prefix if target else None, budget_ids)
    write_cards(cards, output_dir)
    ctx.accelerator.print(f"{summary_line(report)}; report: {output_dir / 'report.md'}")
    if target is not None:
        upload_sweep(target, chosen, cards, budgets)
        ctx.accelerator.print(f"pushed: {pushed_line(target.pushed(chosen, budgets))}")


def _print_summary(ctx: SweepContext) -> None:
    results = ctx.results
    teacher, several_seeds = results.teacher, len(results.seeds) > 1
    lines = [
        f"teacher: {teacher.parameters:,} parameters, test accuracy {teacher.accuracy:.4f}",
        f"{'rank':>5} {'parameters':>11} {'compress':>8} {'accuracy':>8} {'of teacher':>10}",
    ]
    for record in results.ranks:
        if record.status == "done":
            lines.append(
                f"{record.rank:>5} {record.parameters:>11,} {record.compression:>7.2f}x {record.accuracy:>8.4f} "
                f"{record.normalized_accuracy:>9.1%}" + (f"  (seed {record.seed})" if several_seeds else "")
            )
        else:
            lines.append(f"{record.rank:>5} failed: {record.error}")
    for record in results.budget_students:
        if record.status != "done":
            lines.append(f"budget {record.budget:g} (seed {record.seed}) failed: {record.error}")
    store = ctx.store
    lines.append(f"results: {store.path} (students in {store.dir}/rank-XXX, teacher in {store.dir}/{TEACHER_DIR})")
    ctx.accelerator.print("\n".join(lines))


def run_sweep(sweep: SweepArguments, args: DistillationConfig, command: str | None = None) -> SweepResults:
    """Run (or resume) the sweep; returns its results (also in OUTPUT_DIR/results.json). `command` (the command
    line that made the sweep) is recorded for the model cards."""
    ctx = _open(sweep, args, command)
    with ctx.accelerator.main_process_first():
        try:
            data = load_classification_data(
                sweep.dataset,
                ctx.modality,
                image_column=sweep.image_column,
                text_column=sweep.text_column,
                label_column=sweep.label_column,
                train_split=sweep.train_split,
                test_split=sweep.test_split,
                seed=args.seed,
                max_train_samples=sweep.max_train_samples,
                max_test_samples=sweep.max_test_samples,
            )
        except ValueError as error:
            raise SweepError(str(error)) from error
    run_teacher_stage(ctx, data)
    _student_stages(ctx)
    run_cnn_stage(ctx)
    ctx.store.remove_checkpoint()  # one left by a run killed between recording a stage and removing it
    _print_summary(ctx)
    if ctx.accelerator.is_main_process:
        _publish(ctx)
    ctx.accelerator.wait_for_everyone()
    return ctx.results

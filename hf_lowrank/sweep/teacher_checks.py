"""Every check of the sweep's arguments against the loaded teacher, in one place, run by the teacher stage before an
overwritten sweep is removed and before any training (`check_against_teacher`): the blocks the layout names, the
ranks every factorized layer can have, the --param_budget range, and a training split that gives a batch. The
checks that need no teacher are `argument_checks.py`'s."""

import torch
from torch import nn

from ..factorization import LayerSpectrum
from ..models import check_rank, find_blocks, layout_of
from .arguments import SweepError
from .budget_stage import budget_count
from .context import SweepContext
from .factorization import factorized_layer_names
from .families import encoder_linears
from .students import student_max_rank


__all__ = ["check_against_teacher", "check_batches", "check_budgets", "check_layout", "check_ranks"]


def check_against_teacher(ctx: SweepContext) -> None:
    """Every check below, in the order a user meets the flags: blocks, ranks, budgets, batches."""
    check_layout(ctx)
    check_ranks(ctx)
    check_budgets(ctx)
    check_batches(ctx)


def _has_module(block: nn.Module, relative: str) -> bool:
    try:
        block.get_submodule(relative)
        return True
    except AttributeError:
        return False


def check_ranks(ctx: SweepContext) -> None:
    """Refuse, before any training, a rank no student layer can have."""
    max_rank = student_max_rank(ctx)
    for rank in ctx.sweep.ranks or []:
        try:
            check_rank(
                rank,
                max_rank,
                max_rank,
                layer=f"every factorized linear layer of the {ctx.teacher.config.model_type} students",
            )
        except ValueError as error:
            raise SweepError(f"ranks {ctx.sweep.ranks}: {error}") from error


def check_layout(ctx: SweepContext) -> None:
    """Refuse, before anything is written or removed, blocks the teacher does not have: a block pattern that
    matches no module, an attention / MLP output module missing from a block (each named by its flag, with the
    block's modules to choose from), --exclude_modules leaving nothing to factorize."""
    sweep, teacher = ctx.sweep, ctx.teacher
    layout = layout_of(teacher, ctx.layout)
    by_hand = sweep.block_pattern is not None
    try:
        blocks = find_blocks(teacher, layout)
    except ValueError as error:
        where = f"--block_pattern {sweep.block_pattern!r}" if by_hand else f"the {teacher.config.model_type} teacher"
        raise SweepError(f"{where}: {error}") from error
    for flag, relative in (
        ("block_attention_output", layout.attention_output),
        ("block_mlp_output", layout.mlp_output),
    ):
        missing = [name for name, block in blocks if relative is not None and not _has_module(block, relative)]
        if missing:
            name, block = next((n, b) for n, b in blocks if n == missing[0])
            inside = [child for child, _ in block.named_modules() if child][:16]
            where = f"--{flag} {relative!r}" if by_hand else f"the {teacher.config.model_type} teacher"
            raise SweepError(
                f"{where}: {len(missing)} of the {len(blocks)} blocks have no module {relative!r} (e.g. {name}, "
                f"whose modules are {inside}); name a module inside every block."
            )
    if not factorized_layer_names(ctx):
        raise SweepError(
            f"--exclude_modules {sweep.exclude_modules}: excludes every encoder linear of the teacher's blocks "
            f"({', '.join(list(encoder_linears(teacher, ctx.layout))[:4])}, ...); nothing is left to "
            "factorize."
        )


def check_budgets(ctx: SweepContext) -> None:
    """Refuse a `--param_budget` outside its valid range from the teacher's layer shapes alone (the range needs no
    spectrum), before the teacher is trained and before an overwritten sweep is removed."""
    teacher = ctx.teacher
    shapes = {}
    for name in factorized_layer_names(ctx) if ctx.sweep.param_budget else []:
        linear = teacher.get_submodule(name)
        rank = min(linear.in_features, linear.out_features)
        shapes[name] = LayerSpectrum(
            linear.in_features, linear.out_features, linear.bias is not None, torch.ones(rank)
        )
    for budget in ctx.sweep.param_budget or []:
        budget_count(budget, shapes)


def check_batches(ctx: SweepContext) -> None:
    """Refuse a training split that gives no batch (all dropped by --dataloader_drop_last)."""
    args, examples = ctx.args, len(ctx.processed["train"])
    per_step = args.per_device_train_batch_size * ctx.accelerator.num_processes
    if args.dataloader_drop_last and examples < per_step:
        raise SweepError(
            f"--dataloader_drop_last with {examples} training examples and --per_device_train_batch_size "
            f"{args.per_device_train_batch_size} on {ctx.accelerator.num_processes} process(es) leaves no batch; "
            "use a smaller batch or keep the last batch."
        )

"""The teacher stage: load (or build) the teacher, fine-tune it on the dataset's labels when needed, evaluate it and
record it. Its test accuracy is the baseline every student is normalised by."""

import copy
import time

import numpy as np

from ..data import preprocess, validation_count, validation_indices
from ..distillation import LockstepTrainer
from ..models import (
    PretrainedSource,
    backbone_of,
    check_safetensors_files,
    count_parameters,
    layout_of,
    resolve_pretrained_source,
)
from ..report import near_chance_note
from ..results import DatasetInfo, TeacherResult
from .arguments import SweepArguments, SweepError
from .context import SweepContext
from .embedded import EMBEDDED_NAMES, embedded_config, embedded_teacher
from .families import (
    TASKS,
    encoder_linears,
    load_processor,
    sentence_transformers_pooling,
    sweep_layout,
    task_auto_class,
    teacher_family_problem,
    teacher_modality,
    text_length_limit,
)
from .measurements import diagnose, latency, robustness
from .store import TEACHER_DIR
from .teacher_checks import check_against_teacher


__all__ = ["finetune_teacher", "load_teacher", "lora_config", "run_teacher_stage", "teacher_source"]


def teacher_source(sweep: SweepArguments) -> PretrainedSource | None:
    """Where --teacher comes from (None: the embedded teacher), its config read and its files checked, before any
    data is loaded: a path that does not exist, a model of another family or a truncated file stop the run here."""
    if sweep.teacher is None:
        problem = teacher_family_problem(embedded_config(sweep.teacher_architecture, ["0", "1"]), sweep)
        if problem:
            raise SweepError(f"--teacher_architecture {sweep.teacher_architecture}: the embedded teacher {problem}.")
        return None
    try:
        source = resolve_pretrained_source(sweep.teacher, argument="--teacher", model_types=None)
    except ValueError as error:
        raise SweepError(str(error)) from error
    problem = teacher_family_problem(source.config, sweep)
    if problem:
        raise SweepError(f"--teacher {sweep.teacher!r} {problem}.")
    return source


def load_teacher(sweep: SweepArguments, label_names: list[str], source: PretrainedSource | None = None):
    """The teacher and its image processor, and how it still has to be fine-tuned on these labels.

    The config is read first (`teacher_source`), so a teacher of another family or with other labels is refused
    before any weights are loaded."""
    if sweep.teacher is None:
        model, processor = embedded_teacher(label_names, sweep.teacher_architecture)
        return model, processor, "full" if sweep.teacher_finetune in ("auto", "full") else sweep.teacher_finetune
    source = source or teacher_source(sweep)
    config = source.config
    modality = teacher_modality(config)
    processor = load_processor(source.name_or_path, modality)  # before any weights: a missing one stops here
    teacher_labels = [(config.id2label or {}).get(i, str(i)) for i in range(config.num_labels or 0)]
    same_labels = teacher_labels == label_names
    mode = sweep.teacher_finetune
    if mode == "auto":
        mode = "none" if same_labels else "full"
    if mode == "none" and not same_labels:
        unknown = sorted(set(label_names) - set(teacher_labels))
        raise SweepError(
            f"--teacher_finetune none, but the teacher's labels are not the dataset's: labels outside the teacher's "
            f"label set: {unknown[:10]}{' ...' if len(unknown) > 10 else ''} (teacher has {len(teacher_labels)} "
            f"labels, the dataset {len(label_names)}). Let the teacher be fine-tuned (auto, full or lora)."
        )
    relabel = (
        {}
        if same_labels
        else dict(
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            ignore_mismatched_sizes=True,
        )
    )
    model = task_auto_class(modality).from_pretrained(source.name_or_path, **relabel)
    return model, processor, mode


def lora_config(model, sweep: SweepArguments):
    """peft's LoRA on every encoder linear (the layers the students factorize), the task head trained in full."""
    from peft import LoraConfig

    layout = sweep_layout(sweep)
    found = backbone_of(model, layout_of(model, layout))
    backbone = found[0] if found is not None else model.base_model_prefix
    heads = [
        name for name, child in model.named_children() if name != backbone and any(True for _ in child.parameters())
    ]
    targets = list(encoder_linears(model, layout))
    return LoraConfig(r=sweep.lora_rank, lora_alpha=2 * sweep.lora_rank, target_modules=targets, modules_to_save=heads)


def carve_validation(ctx: SweepContext) -> None:
    """With --validation_split, move a stratified, seeded (--seed) share of the training split into
    `ctx.processed["validation"]`: the same rows on every run of the sweep."""
    split = ctx.sweep.validation_split
    if split is None:
        return
    train = ctx.processed["train"]
    count = validation_count(split, len(train))
    try:
        rows = validation_indices(np.asarray(train["labels"]), count, ctx.args.seed)
    except ValueError as error:
        raise SweepError(
            f"--validation_split {split:g} ({count} of {len(train)} training examples): {error}."
        ) from error
    ctx.processed["validation"] = train.select(rows)
    ctx.processed["train"] = train.select(np.setdiff1d(np.arange(len(train)), rows))


def finetune_teacher(ctx: SweepContext, model, mode: str):
    """Fine-tune the teacher on the labels (full, or LoRA merged afterwards); returns it and the examples each
    process trained on."""
    sweep, accelerator = ctx.sweep, ctx.accelerator
    stage_args = copy.copy(ctx.args)  # a shallow copy: TrainingArguments.__post_init__ must not run again
    stage_args.learning_rate = sweep.teacher_learning_rate
    stage_args.num_train_epochs = sweep.teacher_num_train_epochs
    stage_args.weight_decay = sweep.teacher_weight_decay
    stage_args.max_steps = -1
    # Evaluated on the validation split and logged like the students, but never stopped early nor rewound: the
    # early-stopping and best-model flags are the students'.
    stage_args.early_stopping_patience = None
    stage_args.load_best_model_at_end = False
    if mode == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(model, sweep))
    checkpoint = ctx.store.checkpoint({"stage": "teacher", "finetune": mode})
    result = LockstepTrainer(accelerator, stage_args, teacher=None, description="teacher").train(
        {"teacher": model}, ctx.processed["train"], checkpoint, ctx.processed.get("validation")
    )["teacher"]
    if result.status != "done":
        raise RuntimeError(f"the teacher stage failed: {result.error}")
    model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # a plain forward, as when reloaded
    if mode == "lora":
        model = model.merge_and_unload()
    return model.eval(), result.examples_per_process


def run_teacher_stage(ctx: SweepContext, data) -> None:
    """Load the finished teacher of an earlier run, or load/build, fine-tune, evaluate and record one. Sets
    `ctx.teacher`, `ctx.processor` and `ctx.processed`."""
    store, accelerator, sweep = ctx.store, ctx.accelerator, ctx.sweep
    teacher_dir = store.dir / TEACHER_DIR
    finished = store.teacher_finished()
    if finished:
        try:
            check_safetensors_files(teacher_dir)
        except ValueError as error:
            raise SweepError(f"the finished teacher of this sweep cannot be read back: {error}") from error
        ctx.teacher = task_auto_class(ctx.modality).from_pretrained(teacher_dir)
        ctx.processor = load_processor(teacher_dir, ctx.modality, argument="the finished teacher")
        accelerator.print(f"resuming: teacher from {teacher_dir} (test accuracy {ctx.results.teacher.accuracy:.4f})")
    else:
        ctx.teacher, ctx.processor, mode = load_teacher(sweep, data.label_names, ctx.teacher_source)
        pooling = sentence_transformers_pooling(sweep.teacher) if sweep.teacher else None
        if pooling is not None and ctx.modality == "text":
            accelerator.print(
                f"note: {sweep.teacher} is a sentence-transformers model trained with {pooling} pooling; the sweep's "
                f"teacher is its {type(ctx.teacher).__name__}, which classifies from the first ([CLS]) token "
                "through the model's pooler, as transformers loads it; the students do the same."
            )
    with accelerator.main_process_first():
        max_length = text_length_limit(ctx.teacher.config, ctx.sweep.max_seq_length)
        if ctx.modality == "text" and max_length < ctx.sweep.max_seq_length:
            accelerator.print(
                f"note: --max_seq_length {ctx.sweep.max_seq_length} is above the teacher's position table: texts "
                f"are cut at {max_length} tokens."
            )
        try:
            ctx.processed = preprocess(data, ctx.processor, max_length=max_length)
        except ValueError as error:  # an image that cannot be read (named with its file), a bad max_length
            raise SweepError(str(error)) from error
    carve_validation(ctx)
    # Everything that can be checked against the teacher, before an overwritten sweep is removed.
    check_against_teacher(ctx)
    if finished:
        return
    store.start_afresh()  # an overwritten sweep goes only now, with everything this run needs loaded
    store.write()  # the fingerprint, from now on: a rerun with other settings is refused, not resumed

    start = time.perf_counter()
    examples_per_process = []
    if mode != "none":
        ctx.teacher, examples_per_process = finetune_teacher(ctx, ctx.teacher, mode)
    evaluation = ctx.evaluate({"teacher": ctx.teacher}, "evaluating teacher")["teacher"]
    store.save_model(TEACHER_DIR, ctx.teacher, ctx.processor)
    ctx.results.teacher = TeacherResult(
        source=sweep.teacher or f"embedded digits {EMBEDDED_NAMES[sweep.teacher_architecture]}",
        model_type=ctx.teacher.config.model_type,
        task=TASKS[ctx.modality],
        finetune=mode,
        model_dir=TEACHER_DIR,
        accuracy=evaluation.accuracy,
        parameters=count_parameters(ctx.teacher),
        train_seconds=time.perf_counter() - start,
        examples_per_process=examples_per_process,
        correct=evaluation.correct.astype(int).tolist(),
        **robustness(evaluation),
        diagnostics=diagnose(ctx, TEACHER_DIR, ctx.teacher),
        latency=latency(ctx, ctx.teacher, teacher=True),
    )
    ctx.results.dataset = DatasetInfo(
        name=sweep.dataset,
        num_train=len(ctx.processed["train"]),
        num_test=len(ctx.processed["test"]),
        label_names=data.label_names,
        num_validation=len(ctx.processed["validation"]) if "validation" in ctx.processed else 0,
    )
    store.write()
    store.remove_checkpoint()
    accelerator.print(f"teacher: test accuracy {evaluation.accuracy:.4f} ({len(ctx.processed['test'])} examples)")
    warning = near_chance_note(evaluation.accuracy, len(data.label_names))
    if warning:
        accelerator.print(f"warning: {warning}")

"""The teacher stage: load (or build) the teacher, fine-tune it on the dataset's labels when needed, evaluate it and
record it. Its test accuracy is the baseline every student is normalised by."""

import copy
import time

from transformers import AutoImageProcessor, ViTForImageClassification

from ..data import ImageClassificationData, preprocess
from ..distillation import LockstepTrainer
from ..models import PretrainedSource, check_safetensors_files, count_parameters, resolve_pretrained_source
from ..report import near_chance_note
from ..results import DatasetInfo, TeacherResult
from .arguments import SweepArguments, SweepError
from .context import SweepContext
from .embedded import embedded_teacher
from .measurements import diagnose, robustness
from .store import TEACHER_DIR
from .students import check_ranks


__all__ = ["LORA_TARGETS", "finetune_teacher", "load_teacher", "run_teacher_stage", "teacher_source"]

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"]


def teacher_source(sweep: SweepArguments) -> PretrainedSource | None:
    """Where --teacher comes from (None: the embedded teacher), its config read and its files checked, before any
    data is loaded: a path that does not exist, a model of another family or a truncated file stop the run here."""
    if sweep.teacher is None:
        return None
    try:
        source = resolve_pretrained_source(sweep.teacher, argument="--teacher", model_types=None)
    except ValueError as error:
        raise SweepError(str(error)) from error
    if source.config.model_type != "vit":
        kind = ", ".join(source.config.architectures or []) or f"model_type {source.config.model_type!r}"
        raise SweepError(
            f"teacher {sweep.teacher!r} is a {kind}; hf_lowrank distils ViTForImageClassification teachers "
            "(model_type 'vit')."
        )
    return source


def load_teacher(sweep: SweepArguments, label_names: list[str], source: PretrainedSource | None = None):
    """The teacher and its image processor, and how it still has to be fine-tuned on these labels.

    The config is read first (`teacher_source`), so a teacher of another family or with other labels is refused
    before any weights are loaded."""
    if sweep.teacher is None:
        model, processor = embedded_teacher(label_names)
        return model, processor, "full" if sweep.teacher_finetune in ("auto", "full") else sweep.teacher_finetune
    source = source or teacher_source(sweep)
    config = source.config
    teacher_labels = [config.id2label[i] for i in range(config.num_labels)]
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
    model = ViTForImageClassification.from_pretrained(source.name_or_path, **relabel)
    return model, AutoImageProcessor.from_pretrained(source.name_or_path), mode


def finetune_teacher(ctx: SweepContext, model, mode: str):
    """Fine-tune the teacher on the labels (full, or LoRA merged afterwards); returns it and the examples each
    process trained on."""
    sweep, accelerator = ctx.sweep, ctx.accelerator
    stage_args = copy.copy(ctx.args)  # a shallow copy: TrainingArguments.__post_init__ must not run again
    stage_args.learning_rate = sweep.teacher_learning_rate
    stage_args.num_train_epochs = sweep.teacher_num_train_epochs
    stage_args.weight_decay = sweep.teacher_weight_decay
    stage_args.max_steps = -1
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=sweep.lora_rank,
                lora_alpha=2 * sweep.lora_rank,
                target_modules=LORA_TARGETS,
                modules_to_save=["classifier"],
            ),
        )
    checkpoint = ctx.store.checkpoint({"stage": "teacher", "finetune": mode})
    result = LockstepTrainer(accelerator, stage_args, teacher=None, description="teacher").train(
        {"teacher": model}, ctx.processed["train"], checkpoint
    )["teacher"]
    if result.status != "done":
        raise RuntimeError(f"the teacher stage failed: {result.error}")
    model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # a plain forward, as when reloaded
    if mode == "lora":
        model = model.merge_and_unload()
    return model.eval(), result.examples_per_process


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


def run_teacher_stage(ctx: SweepContext, data: ImageClassificationData) -> None:
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
        ctx.teacher = ViTForImageClassification.from_pretrained(teacher_dir)
        ctx.processor = AutoImageProcessor.from_pretrained(teacher_dir)
        accelerator.print(f"resuming: teacher from {teacher_dir} (test accuracy {ctx.results.teacher.accuracy:.4f})")
    else:
        ctx.teacher, ctx.processor, mode = load_teacher(sweep, data.label_names, ctx.teacher_source)
    with accelerator.main_process_first():
        ctx.processed = preprocess(data, ctx.processor)
    check_ranks(ctx)
    check_batches(ctx)
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
        source=sweep.teacher or "embedded digits ViT",
        finetune=mode,
        model_dir=TEACHER_DIR,
        accuracy=evaluation.accuracy,
        parameters=count_parameters(ctx.teacher),
        train_seconds=time.perf_counter() - start,
        examples_per_process=examples_per_process,
        correct=evaluation.correct.astype(int).tolist(),
        **robustness(evaluation),
        diagnostics=diagnose(ctx, TEACHER_DIR, ctx.teacher),
    )
    ctx.results.dataset = DatasetInfo(
        name=sweep.dataset,
        num_train=len(ctx.processed["train"]),
        num_test=len(ctx.processed["test"]),
        label_names=data.label_names,
    )
    store.write()
    store.remove_checkpoint()
    accelerator.print(f"teacher: test accuracy {evaluation.accuracy:.4f} ({len(ctx.processed['test'])} examples)")
    warning = near_chance_note(evaluation.accuracy, len(data.label_names))
    if warning:
        accelerator.print(f"warning: {warning}")

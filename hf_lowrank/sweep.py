"""The rank sweep: teacher stage, one distilled student per rank (trained in lock-step), results.json.

`run_sweep` is what `scripts/sweep.py` runs under `accelerate launch`. It is resumable: every finished stage is
recorded atomically in `results.json`; rerunning the same command keeps them and redoes only what is unfinished.
"""

import copy
import os
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
    set_seed,
)

from . import __version__
from .accounting import count_parameters
from .cards import write_cards
from .cnn_students import CNN_CAPACITIES, CNNEmbeddingStudent
from .data import DIGITS, load_image_classification_data, preprocess
from .distillation import DistillationConfig
from .factorized_linear import check_rank
from .hub import push_sweep
from .lockstep import LockstepTrainer, evaluate_models
from .modeling_bridged_vit import BridgedViTForImageClassification
from .modeling_factorized_vit import FactorizedViTForImageClassification
from .report import write_report
from .representations import diagnose_model
from .results import RESULTS_FORMAT, RESULTS_VERSION, atomic_write_json, load_results


__all__ = ["SweepArguments", "SweepError", "default_ranks", "embedded_teacher", "run_sweep", "student_dir"]

TEACHER_DIR = "teacher"
RESULTS_FILE = "results.json"
FINETUNE_MODES = ("auto", "full", "lora", "none")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"]


class SweepError(ValueError):
    """Bad sweep input, found before training wherever it can be checked up front."""


@dataclass
class SweepArguments:
    """What to sweep. Training hyperparameters are the `DistillationConfig` / `TrainingArguments` flags."""

    teacher: str | None = field(
        default=None,
        metadata={
            "help": "ViTForImageClassification to distil: a local path or a Hub id. Default: a small ViT "
            "trained first on the embedded digits data."
        },
    )
    dataset: str = field(
        default=DIGITS,
        metadata={
            "help": "'digits' (embedded, offline), an image-folder path, or a Hub dataset id with an image "
            "and a label column."
        },
    )
    image_column: str | None = field(default=None, metadata={"help": "Image column; found automatically if unset."})
    label_column: str | None = field(default=None, metadata={"help": "Label column; found automatically if unset."})
    train_split: str | None = field(default=None, metadata={"help": "Training split (default: 'train')."})
    test_split: str | None = field(
        default=None,
        metadata={
            "help": "Held-out split accuracy is measured on (default: 'test' or 'validation'; a source with "
            "a train split only is split 80/20, stratified, with --seed)."
        },
    )
    ranks: list[int] | None = field(
        default=None,
        metadata={"help": "Ranks to sweep (default: powers of two up to the model width, and the width)."},
    )
    exclude_modules: list[str] | None = field(
        default=None, metadata={"help": "Encoder linear layers to keep dense in every student (e.g. o_proj)."}
    )
    student_bridge: str = field(
        default="none",
        metadata={
            "help": "none: FactorizedViT students; lift or widelast: the encoding-mismatch paper's bridges on the "
            "factorized students (a projector kept after the last block, or the last block kept dense), distilled "
            "with MSE on the final tokens plus the logit term.",
            "choices": ["none", "lift", "widelast"],
        },
    )
    student_hidden_size: int | None = field(
        default=None,
        metadata={
            "help": "With --student_bridge: narrow students of this width (randomly initialised, blocks factorized "
            "at each rank, at most this width), as the encoding-mismatch paper's narrow students. Default: the "
            "teacher's width, starting from the teacher's weights."
        },
    )
    student_num_attention_heads: int | None = field(
        default=None, metadata={"help": "Attention heads of the narrow students (must divide --student_hidden_size)."}
    )
    cnn_students: list[str] | None = field(
        default=None,
        metadata={
            "help": "Also distil CNN students of these capacities (small, medium, large: transformers ResNets) by "
            "cosine distillation of the teacher's embedding, to measure dimensional collapse beside the ranks."
        },
    )
    teacher_finetune: str = field(
        default="auto",
        metadata={
            "help": "Teacher stage: auto (fine-tune unless the teacher's labels are the dataset's), full, "
            "lora (peft, merged afterwards) or none.",
            "choices": list(FINETUNE_MODES),
        },
    )
    teacher_num_train_epochs: float = field(default=30.0, metadata={"help": "Epochs of the teacher stage."})
    teacher_learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate of the teacher stage."})
    teacher_weight_decay: float = field(default=0.05, metadata={"help": "Weight decay of the teacher stage."})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank when --teacher_finetune lora."})
    seeds: list[int] | None = field(
        default=None,
        metadata={
            "help": "Student seeds (default: --seed). Every rank is distilled once per seed, and the report "
            "adds intervals across seeds. The teacher and the data split use --seed."
        },
    )
    lockstep_group_size: int = field(
        default=0,
        metadata={
            "help": "Students trained together in lock-step (0: all pending ranks at once). Smaller groups "
            "lose less work to a crash; larger ones share the teacher's forward pass more."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split (debugging)."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Truncate the test split (debugging)."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start afresh in an output directory holding a sweep made with another configuration."},
    )
    noise_sigmas: list[float] = field(
        default_factory=lambda: [0.05, 0.1, 0.2],
        metadata={
            "help": "Standard deviations of the Gaussian noise added to the normalised test inputs to measure "
            "robustness (seeded per example by --seed; 0: none)."
        },
    )
    diagnostics_examples: int = field(
        default=256,
        metadata={
            "help": "Test images the representation diagnostics (per-image SVD, dataset PCA, spectral energy, "
            "entropy effective rank) use for the teacher and every student; 0 turns them off."
        },
    )
    push_ranks: list[str] | None = field(
        default=None,
        metadata={
            "help": "With --push_to_hub: the students to push, 'all' (default), 'knee', 'region' or rank "
            "numbers. Students go to HUB_MODEL_ID-rank-XXX, the report to HUB_MODEL_ID."
        },
    )
    config: str | None = field(default=None, metadata={"help": "YAML file of arguments; command-line flags win."})

    def __post_init__(self):
        if self.student_bridge not in ("none", "lift", "widelast"):
            raise SweepError(f"student_bridge must be none, lift or widelast, got {self.student_bridge!r}.")
        if self.student_hidden_size is not None and self.student_bridge == "none":
            raise SweepError(
                "student_hidden_size needs --student_bridge lift or widelast to reach the teacher's width."
            )
        if self.student_hidden_size is not None and (
            self.student_num_attention_heads is None or self.student_hidden_size % self.student_num_attention_heads
        ):
            raise SweepError(
                f"student_num_attention_heads ({self.student_num_attention_heads}) must be given and divide "
                f"student_hidden_size ({self.student_hidden_size})."
            )
        if self.student_bridge != "none" and self.exclude_modules:
            raise SweepError("exclude_modules applies to FactorizedViT students; with a bridge, leave it unset.")
        unknown = [c for c in self.cnn_students or [] if c not in CNN_CAPACITIES]
        if unknown or len(set(self.cnn_students or [])) != len(self.cnn_students or []):
            raise SweepError(f"cnn_students must be distinct among {list(CNN_CAPACITIES)}, got {self.cnn_students}.")
        if self.teacher_finetune not in FINETUNE_MODES:
            raise SweepError(f"teacher_finetune must be one of {FINETUNE_MODES}, got {self.teacher_finetune!r}.")
        if self.ranks is not None:
            if not self.ranks:
                raise SweepError("ranks is empty: give at least one rank, e.g. --ranks 8 16 32.")
            duplicated = sorted({r for r in self.ranks if self.ranks.count(r) > 1})
            if duplicated:
                raise SweepError(f"ranks lists {duplicated} more than once: {self.ranks}.")
            bad = [r for r in self.ranks if isinstance(r, bool) or not isinstance(r, int) or r < 1]
            if bad:
                raise SweepError(f"ranks must be positive integers, got {bad}.")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise SweepError(f"seeds must be a non-empty list without repeats, got {self.seeds}.")
        if self.teacher is None and self.dataset != DIGITS:
            raise SweepError(f"--teacher is required for dataset {self.dataset!r}; only 'digits' has an embedded one.")
        bad_push = [p for p in self.push_ranks or [] if p not in ("all", "knee", "region") and not str(p).isdigit()]
        if bad_push:
            raise SweepError(f"push_ranks entries must be all, knee, region or rank numbers, got {bad_push}.")
        if self.lockstep_group_size < 0:
            raise SweepError(f"lockstep_group_size must be >= 0, got {self.lockstep_group_size}.")


def default_ranks(width: int) -> list[int]:
    """Powers of two below `width`, then `width` itself: 1, 2, 4, ..., width."""
    ranks, rank = [], 1
    while rank < width:
        ranks.append(rank)
        rank *= 2
    return ranks + [width]


def embedded_teacher(label_names: list[str]) -> tuple[ViTForImageClassification, ViTImageProcessorPil]:
    """The small ViT the embedded default trains on 8x8 digits: 16 patches of 2x2, width 48, 3 blocks."""
    config = ViTConfig(
        image_size=8,
        patch_size=2,
        num_channels=3,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )
    processor = ViTImageProcessorPil(
        size={"height": 8, "width": 8}, resample=0, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    return ViTForImageClassification(config), processor


def _student_max_rank(teacher: nn.Module, sweep: SweepArguments) -> int:
    """Largest rank valid for the students: the teacher's, or a narrow student's width."""
    return min(_max_rank(teacher), sweep.student_hidden_size or _max_rank(teacher))


def _max_rank(model: nn.Module) -> int:
    """Largest rank valid for every encoder linear layer of a ViT: min over layers of min(in, out)."""
    dims = [
        min(m.in_features, m.out_features) for name, m in model.vit.layers.named_modules() if isinstance(m, nn.Linear)
    ]
    return min(dims)


# Arguments a rerun may change without touching finished results: lists that can grow, and output-only flags.
GROWABLE_OR_OUTPUT_ONLY = (
    "ranks",
    "seeds",
    "cnn_students",
    "overwrite_output_dir",
    "config",
    "lockstep_group_size",
    "push_ranks",
)


def _fingerprint(sweep: SweepArguments, args: DistillationConfig, accelerator: Accelerator) -> dict:
    """Everything that changes a sweep's numbers; a rerun must match it to resume (the rank, seed and CNN student
    lists may grow).

    The numbers are reproducible for one seed, process count, device type and CPU thread count: the thread count
    changes the order of floating-point sums (`accelerate launch` sets OMP_NUM_THREADS=1 on CPU by default)."""
    own = {k: v for k, v in asdict(sweep).items() if k not in GROWABLE_OR_OUTPUT_ONLY}
    training = {
        k: getattr(args, k)
        for k in (
            "distillation_mode",
            "temperature",
            "ce_weight",
            "learning_rate",
            "weight_decay",
            "adam_beta1",
            "adam_beta2",
            "adam_epsilon",
            "max_grad_norm",
            "num_train_epochs",
            "max_steps",
            "warmup_steps",
            "lr_scheduler_type",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "seed",
            "dataloader_drop_last",
        )
    }
    training["lr_scheduler_type"] = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    environment = {
        "num_processes": accelerator.num_processes,
        "device_type": accelerator.device.type,
        "torch_num_threads": torch.get_num_threads(),
    }
    return {"sweep": own, "training": training, "environment": environment}


def _differences(fingerprint: dict, previous: dict) -> list[str]:
    """`section.key` of every setting that differs from a previous run's. A sweep argument the previous run did not
    record (one added to hf_lowrank since) counts as its default, so older sweeps still resume."""
    defaults = {f.name: f.default if f.default is not MISSING else f.default_factory() for f in fields(SweepArguments)}
    changed = []
    for section, values in fingerprint.items():
        before = previous.get(section, {})
        for key in sorted(set(values) | set(before)):
            old = before.get(key, defaults.get(key) if section == "sweep" else None)
            if values.get(key) != old:
                changed.append(f"{section}.{key}")
    return changed


class _Store:
    """results.json plus the model directories beside it; only the main process writes."""

    def __init__(self, output_dir: Path, fingerprint: dict, accelerator: Accelerator, overwrite: bool):
        self.dir = output_dir
        self.path = output_dir / RESULTS_FILE
        self.accelerator = accelerator
        self.payload = {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "hf_lowrank_version": __version__,
            "config": fingerprint,
            "teacher": None,
            "dataset": None,
            "ranks": [],
        }
        if self.path.exists():
            previous = load_results(self.path)
            changed = _differences(fingerprint, previous["config"])
            if not changed:
                self.payload = previous
                self.payload["config"] = fingerprint  # arguments added since, at their defaults, are recorded
            elif not overwrite:
                raise SweepError(
                    f"{output_dir} holds a sweep made with another configuration (differs in: {', '.join(changed)}). "
                    "Use another --output_dir, rerun with the same arguments to resume, or pass "
                    "--overwrite_output_dir to start afresh."
                )
            elif accelerator.is_main_process:
                for child in output_dir.iterdir():
                    if child.name in (RESULTS_FILE, TEACHER_DIR) or child.name.startswith(("rank-", "cnn-")):
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
        accelerator.wait_for_everyone()

    def finished(self) -> set[tuple[int, int]]:
        """(rank, seed) of every student recorded as failed, or as done with its model directory in place."""
        return {
            (record["rank"], record["seed"])
            for record in self.payload["ranks"]
            if record["status"] == "failed" or (self.dir / record["model_dir"]).is_dir()
        }

    def save_model(self, name: str, model: nn.Module, processor) -> str:
        """Save atomically: written to a temporary directory, then renamed into place."""
        if self.accelerator.is_main_process:
            final, tmp = self.dir / name, self.dir / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.accelerator.unwrap_model(model).save_pretrained(tmp)
            processor.save_pretrained(tmp)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        self.accelerator.wait_for_everyone()
        return name

    def write(self) -> None:
        if self.accelerator.is_main_process:
            self.payload["ranks"].sort(key=lambda record: (record["seed"], record["rank"]))
            atomic_write_json(self.path, self.payload)
        self.accelerator.wait_for_everyone()


def _check_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise SweepError(f"output_dir {str(output_dir)!r} is not writable: {error}.") from error


def _load_teacher(sweep: SweepArguments, label_names: list[str]):
    """The teacher and its image processor, and how it still has to be fine-tuned on these labels.

    The config is read first, so a teacher of another family or with other labels is refused before any weights
    are loaded."""
    if sweep.teacher is None:
        model, processor = embedded_teacher(label_names)
        return model, processor, "full" if sweep.teacher_finetune in ("auto", "full") else sweep.teacher_finetune
    config = AutoConfig.from_pretrained(sweep.teacher)
    if config.model_type != "vit":
        kind = ", ".join(config.architectures or []) or f"model_type {config.model_type!r}"
        raise SweepError(
            f"teacher {sweep.teacher!r} is a {kind}; hf_lowrank distils ViTForImageClassification teachers "
            "(model_type 'vit')."
        )
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
    model = ViTForImageClassification.from_pretrained(sweep.teacher, **relabel)
    return model, AutoImageProcessor.from_pretrained(sweep.teacher), mode


def _finetune_teacher(model, mode: str, sweep: SweepArguments, args: DistillationConfig, accelerator, train_set):
    """Fine-tune the teacher on the labels (full, or LoRA merged afterwards); returns it and the examples each
    process trained on."""
    stage_args = copy.copy(args)  # a shallow copy: TrainingArguments.__post_init__ must not run again
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
    result = LockstepTrainer(accelerator, stage_args, teacher=None, description="teacher").train(
        {"teacher": model}, train_set
    )["teacher"]
    if result.status != "done":
        raise RuntimeError(f"the teacher stage failed: {result.error}")
    model = accelerator.unwrap_model(model)
    if mode == "lora":
        model = model.merge_and_unload()
    return model.eval(), result.examples_per_process


def _teacher_stage(store: "_Store", sweep, args, accelerator, data):
    """Load the finished teacher of an earlier run, or load/build, fine-tune, evaluate and record one.

    Returns the teacher, its image processor and the preprocessed splits."""
    teacher_dir = store.dir / TEACHER_DIR
    finished = store.payload["teacher"] is not None and teacher_dir.is_dir()
    if finished:
        teacher = ViTForImageClassification.from_pretrained(teacher_dir)
        processor = AutoImageProcessor.from_pretrained(teacher_dir)
        accelerator.print(
            f"resuming: teacher from {teacher_dir} (test accuracy {store.payload['teacher']['accuracy']:.4f})"
        )
    else:
        teacher, processor, mode = _load_teacher(sweep, data.label_names)
    with accelerator.main_process_first():
        processed = preprocess(data, processor)
    _check_ranks(sweep.ranks, teacher, sweep)
    if finished:
        return teacher, processor, processed

    start = time.perf_counter()
    examples_per_process = []
    if mode != "none":
        teacher, examples_per_process = _finetune_teacher(teacher, mode, sweep, args, accelerator, processed["train"])
    evaluation = evaluate_models(
        accelerator,
        {"teacher": teacher},
        processed["test"],
        args.per_device_eval_batch_size,
        description="evaluating teacher",
        noise_sigmas=tuple(s for s in sweep.noise_sigmas if s > 0),
        noise_seed=args.seed,
    )["teacher"]
    store.save_model(TEACHER_DIR, teacher, processor)
    diagnostics = _diagnose(store, TEACHER_DIR, teacher, processed, sweep, accelerator)
    store.payload["teacher"] = {
        "source": sweep.teacher or "embedded digits ViT",
        "finetune": mode,
        "model_dir": TEACHER_DIR,
        "accuracy": evaluation.accuracy,
        "parameters": count_parameters(teacher),
        "train_seconds": time.perf_counter() - start,
        "examples_per_process": examples_per_process,
        "correct": evaluation.correct.astype(int).tolist(),
        **_robustness(evaluation),
        "diagnostics": diagnostics,
    }
    store.payload["dataset"] = {
        "name": sweep.dataset,
        "num_train": len(processed["train"]),
        "num_test": len(processed["test"]),
        "label_names": data.label_names,
    }
    store.write()
    accelerator.print(f"teacher: test accuracy {evaluation.accuracy:.4f} ({len(processed['test'])} examples)")
    return teacher, processor, processed


def _robustness(evaluation) -> dict:
    return {
        "ece": evaluation.ece,
        "noise_accuracy": {str(sigma): accuracy for sigma, accuracy in evaluation.noise_accuracy.items()},
    }


def _diagnose(store: "_Store", model_dir: str, model, processed, sweep, accelerator) -> dict | None:
    """Representation diagnostics of `model` on the test split: written in full to MODEL_DIR/diagnostics.json,
    summarised (final layer, pooled representation) for results.json. Main process only."""
    if not sweep.diagnostics_examples or not accelerator.is_main_process:
        return None
    full = diagnose_model(accelerator.unwrap_model(model), processed["test"], sweep.diagnostics_examples)
    atomic_write_json(store.dir / model_dir / "diagnostics.json", full)
    final = full["layers"][-1]
    return {
        "pooled_entropy_rank": full["pooled_entropy_rank"],
        "svd_rank_p99": final["svd_rank_p99"],
        "shared_dimension": final["shared_dimension"],
        "bandwidth": final["bandwidth"],
        "num_examples": full["num_examples"],
    }


def _check_ranks(ranks: list[int] | None, teacher: nn.Module, sweep: SweepArguments) -> None:
    max_rank = _student_max_rank(teacher, sweep)
    for rank in ranks or []:
        try:
            check_rank(rank, max_rank, max_rank, layer="every factorized linear layer of the students")
        except ValueError as error:
            raise SweepError(f"ranks {ranks}: {error}") from error


def _build_student(teacher, rank: int, sweep: SweepArguments) -> nn.Module:
    if sweep.student_bridge == "none":
        return FactorizedViTForImageClassification.from_teacher(
            teacher, rank=rank, exclude_modules=sweep.exclude_modules
        )
    return BridgedViTForImageClassification.from_teacher(
        teacher,
        bridge=sweep.student_bridge,
        rank=rank,
        hidden_size=sweep.student_hidden_size,
        num_attention_heads=sweep.student_num_attention_heads,
    )


def student_dir(rank: int, seed: int, primary_seed: int) -> str:
    """`rank-008` for the primary seed, `rank-008-seed-1` for the others."""
    return f"rank-{rank:03d}" if seed == primary_seed else f"rank-{rank:03d}-seed-{seed}"


def _student_group(
    group: list[int], seed: int, store: "_Store", sweep, args, accelerator, teacher, processor, processed
):
    """Distil the students of `group` with `seed` in lock-step, evaluate them, save each and record it."""
    primary_seed = args.seed
    if seed != args.seed:
        args = copy.copy(args)  # a shallow copy: TrainingArguments.__post_init__ must not run again
        args.seed = seed
    students = {rank: _build_student(teacher, rank, sweep) for rank in group}
    trainer = LockstepTrainer(accelerator, args, teacher=teacher, description=f"distilling ranks {group}, seed {seed}")
    outcomes = trainer.train({f"rank-{rank:03d}": student for rank, student in students.items()}, processed["train"])
    trainer.close()
    done = {rank: s for rank, s in students.items() if outcomes[f"rank-{rank:03d}"].status == "done"}
    evaluations = evaluate_models(
        accelerator,
        done,
        processed["test"],
        args.per_device_eval_batch_size,
        description="evaluating students",
        noise_sigmas=tuple(s for s in sweep.noise_sigmas if s > 0),
        noise_seed=primary_seed,
    )
    teacher_record = store.payload["teacher"]
    for rank, student in students.items():
        outcome = outcomes[f"rank-{rank:03d}"]
        parameters = count_parameters(accelerator.unwrap_model(student))
        record = {
            "rank": rank,
            "status": outcome.status,
            "error": outcome.error,
            "seed": args.seed,
            "parameters": parameters,
            "compression": teacher_record["parameters"] / parameters,
            "steps": outcome.steps,
            "train_seconds": outcome.train_seconds,
            "examples_per_process": outcome.examples_per_process,
            "loss_history": outcome.loss_history,
            "model_dir": None,
            "config": {
                "rank": rank,
                "bridge": sweep.student_bridge,
                "hidden_size": sweep.student_hidden_size,
                "exclude_modules": sweep.exclude_modules,
                "distillation_mode": args.distillation_mode,
                "teacher": teacher_record["source"],
            },
        }
        if rank in evaluations:
            evaluation = evaluations[rank]
            model_dir = store.save_model(student_dir(rank, seed, primary_seed), student, processor)
            record.update(
                accuracy=evaluation.accuracy,
                normalized_accuracy=evaluation.accuracy / teacher_record["accuracy"],
                correct=evaluation.correct.astype(int).tolist(),
                model_dir=model_dir,
                **_robustness(evaluation),
                diagnostics=_diagnose(store, model_dir, student, processed, sweep, accelerator),
            )
        store.payload["ranks"] = [r for r in store.payload["ranks"] if (r["rank"], r["seed"]) != (rank, seed)]
        store.payload["ranks"].append(record)
        store.write()


def run_sweep(sweep: SweepArguments, args: DistillationConfig, command: str | None = None) -> Path:
    """Run (or resume) the sweep; returns the path of results.json. `command` (the command line that made the
    sweep) is recorded for the model cards."""
    output_dir = Path(args.output_dir)
    if args.push_to_hub and not args.hub_model_id:
        raise SweepError("--push_to_hub needs --hub_model_id, the repository prefix (e.g. my-name/vit-b32-cifar100).")
    accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps, cpu=args.use_cpu)
    if accelerator.is_main_process:
        _check_writable(output_dir)
    accelerator.wait_for_everyone()
    set_seed(args.seed)
    store = _Store(output_dir, _fingerprint(sweep, args, accelerator), accelerator, sweep.overwrite_output_dir)
    store.payload.setdefault("command", command)
    with accelerator.main_process_first():
        data = load_image_classification_data(
            sweep.dataset,
            sweep.image_column,
            sweep.label_column,
            sweep.train_split,
            sweep.test_split,
            seed=args.seed,
            max_train_samples=sweep.max_train_samples,
            max_test_samples=sweep.max_test_samples,
        )
    teacher, processor, processed = _teacher_stage(store, sweep, args, accelerator, data)

    ranks = sweep.ranks or default_ranks(_student_max_rank(teacher, sweep))
    finished = store.finished()
    for seed in sweep.seeds or [args.seed]:
        pending = [rank for rank in ranks if (rank, seed) not in finished]
        if len(pending) < len(ranks):
            accelerator.print(
                f"resuming: seed {seed}, ranks {sorted(set(ranks) - set(pending))} are finished; training {pending}"
            )
        group_size = sweep.lockstep_group_size or len(pending) or 1
        for first in range(0, len(pending), group_size):
            _student_group(
                pending[first : first + group_size],
                seed,
                store,
                sweep,
                args,
                accelerator,
                teacher,
                processor,
                processed,
            )
    _cnn_stage(store, sweep, args, accelerator, teacher, processed)
    _print_summary(accelerator, store)
    if accelerator.is_main_process:
        report = write_report(output_dir)
        write_cards(output_dir, report)
        region, knee = report["region"], report["knee"]
        accelerator.print(
            f"effective rank region [{_show(region['r_low'])}, {_show(region['r_high'])}], knee "
            f"{_show(knee['linear'])} (log-rank axis: {_show(knee['log_rank'])}); report: "
            f"{output_dir / 'report.md'}"
        )
        if args.push_to_hub:  # everything local is written first: a failed upload loses nothing
            repo_ids = push_sweep(
                output_dir, args.hub_model_id, sweep.push_ranks, token=args.hub_token, private=args.hub_private_repo
            )
            accelerator.print("pushed: " + ", ".join(f"rank {r} -> {repo}" for r, repo in sorted(repo_ids.items())))
    accelerator.wait_for_everyone()
    return store.path


def _show(value) -> str:
    return "not reached" if value is None else f"{value:.1f}"


def _cnn_stage(store: "_Store", sweep, args, accelerator, teacher, processed) -> None:
    """Distil the CNN students not yet recorded, in lock-step; evaluate, diagnose, save and record each."""
    done = {r["capacity"] for r in store.payload.get("cnn_students", []) if (store.dir / r["model_dir"]).is_dir()}
    pending = [c for c in sweep.cnn_students or [] if c not in done]
    if not pending:
        return
    sample = processed["train"][: args.per_device_train_batch_size]["pixel_values"].to(accelerator.device)
    students = {c: CNNEmbeddingStudent.from_teacher(teacher, c, sample) for c in pending}
    trainer = LockstepTrainer(accelerator, args, teacher=teacher, description=f"distilling CNN students {pending}")
    outcomes = trainer.train({f"cnn-{c}": s for c, s in students.items()}, processed["train"])
    trainer.close()
    evaluations = evaluate_models(
        accelerator,
        students,
        processed["test"],
        args.per_device_eval_batch_size,
        description="evaluating CNN students",
        noise_sigmas=tuple(s for s in sweep.noise_sigmas if s > 0),
        noise_seed=args.seed,
    )
    for capacity, student in students.items():
        outcome, evaluation, model_dir = outcomes[f"cnn-{capacity}"], evaluations[capacity], f"cnn-{capacity}"
        if accelerator.is_main_process:
            accelerator.unwrap_model(student).save(store.dir / model_dir)
        accelerator.wait_for_everyone()
        parameters = count_parameters(accelerator.unwrap_model(student), trainable_only=True)
        record = {
            "capacity": capacity,
            "status": outcome.status,
            "error": outcome.error,
            "seed": args.seed,
            "parameters": parameters,
            "accuracy": evaluation.accuracy,
            "model_dir": model_dir,
            "normalized_accuracy": evaluation.accuracy / store.payload["teacher"]["accuracy"],
            "train_seconds": outcome.train_seconds,
            **_robustness(evaluation),
            "diagnostics": _diagnose(store, model_dir, student, processed, sweep, accelerator),
        }
        store.payload["cnn_students"] = [
            r for r in store.payload.get("cnn_students", []) if r["capacity"] != capacity
        ] + [record]
        store.write()


def _print_summary(accelerator: Accelerator, store: "_Store") -> None:
    teacher = store.payload["teacher"]
    seeds = {record["seed"] for record in store.payload["ranks"]}
    lines = [
        f"teacher: {teacher['parameters']:,} parameters, test accuracy {teacher['accuracy']:.4f}",
        f"{'rank':>5} {'parameters':>11} {'compress':>8} {'accuracy':>8} {'of teacher':>10}",
    ]
    for record in store.payload["ranks"]:
        if record["status"] == "done":
            lines.append(
                f"{record['rank']:>5} {record['parameters']:>11,} {record['compression']:>7.2f}x "
                f"{record['accuracy']:>8.4f} {record['normalized_accuracy']:>9.1%}"
                + (f"  (seed {record['seed']})" if len(seeds) > 1 else "")
            )
        else:
            lines.append(f"{record['rank']:>5} failed: {record['error']}")
    lines.append(f"results: {store.path} (students in {store.dir}/rank-XXX, teacher in {store.dir}/{TEACHER_DIR})")
    accelerator.print("\n".join(lines))

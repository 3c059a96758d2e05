"""`SweepArguments`: what to sweep (the training hyperparameters are `DistillationConfig`'s), checked up front."""

from dataclasses import dataclass, field

from ..data import DIGITS
from ..distillation import NESTED_DISTRIBUTIONS, NESTED_STRATEGIES
from ..factorization import INITS, init_help
from .argument_checks import (
    BRIDGE_CHOICES,
    EMBEDDED_ARCHITECTURES,
    FINETUNE_MODES,
    SweepError,
    check_choices,
    check_factorization,
    check_inert,
    check_nested,
    check_patterns,
    check_rank_search,
    check_values,
)


__all__ = ["EMBEDDED_ARCHITECTURES", "FINETUNE_MODES", "SweepArguments", "SweepError"]


# The teacher stage's defaults: an embedded teacher is trained from scratch; a --teacher is fine-tuned from
# pretrained weights (README "Pretrained teachers": 2e-3 left MiniLM at chance, 1e-4 for 3 epochs reached 0.73).
EMBEDDED_TEACHER_RECIPE = {"teacher_num_train_epochs": 30.0, "teacher_learning_rate": 2e-3}
PRETRAINED_TEACHER_RECIPE = {"teacher_num_train_epochs": 3.0, "teacher_learning_rate": 1e-4}


@dataclass
class SweepArguments:
    """What to sweep. Training hyperparameters are the `DistillationConfig` / `TrainingArguments` flags."""

    teacher: str | None = field(
        default=None,
        metadata={
            "help": "Image or text classifier to distil (ViT, DeiT, BEiT, DINOv2, Swin, ConvNeXt, CLIP, SigLIP, "
            "BERT, RoBERTa, DistilBERT, or another family with --block_pattern): a local path or a Hub id, with "
            "its image processor or tokenizer beside it. Default: a small teacher of --teacher_architecture trained "
            "first on the embedded digits data."
        },
    )
    teacher_architecture: str = field(
        default="vit",
        metadata={
            "help": "The embedded teacher's family (without --teacher): a small model of it, trained from scratch "
            "on digits at width 48 and depth 3 where the family allows.",
            "choices": list(EMBEDDED_ARCHITECTURES),
        },
    )
    dataset: str = field(
        default=DIGITS,
        metadata={
            "help": "'digits' (embedded, offline), an image-folder path, a CSV / TSV / JSON-lines file with a text "
            "and a label column (text teachers), or a Hub dataset id."
        },
    )
    image_column: str | None = field(default=None, metadata={"help": "Image column; found automatically if unset."})
    text_column: str | None = field(default=None, metadata={"help": "Text column; found automatically if unset."})
    max_seq_length: int = field(
        default=128,
        metadata={"help": "Text: tokens per example at most (padded to the dataset's longest, truncated beyond)."},
    )
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
        metadata={
            "help": "Ranks to sweep (default: powers of two up to the smallest encoder linear's min(in, out), and "
            "that number: 1, 2, 4, ..., 48 for the embedded teachers), or 'auto': a coarse grid (1, 4, 16, ..., "
            "the largest rank), then, round by round, a rank where r_85, r_95 or the knee are still uncertain (see "
            "--rank_tolerance, --max_students)."
        },
    )
    adaptive_ranks: bool = field(
        default=False, metadata={"help": "Set by --ranks auto: choose the ranks adaptively (--ranks auto's help)."}
    )
    rank_tolerance: float = field(
        default=1.0,
        metadata={
            "help": "--ranks auto: a quantity (r_85, r_95, knee) is settled when the measured ranks around its "
            "estimate and its 95%% bootstrap interval are at most this many octaves apart (log2(b / a)), or when no "
            "integer rank is left between them."
        },
    )
    max_students: int | None = field(
        default=None,
        metadata={
            "help": "--ranks auto: at most this many ranks trained per seed, the coarse grid included (default 6; "
            "at least 3); the ranks kept untrained (--rank_search_preview_level) are not counted."
        },
    )
    rank_search_preview_level: float = field(
        default=0.99,
        metadata={
            "help": "--ranks auto: a rank whose training-free preview (of --init) reaches this fraction of the "
            "teacher's accuracy, as every larger previewed rank does, is not distilled: its student is measured and "
            "saved at initialisation, outside --max_students, and the coarse grid stops below it (2: train every "
            "rank)."
        },
    )
    exclude_modules: list[str] | None = field(
        default=None, metadata={"help": "Encoder linear layers to keep dense in every student (e.g. o_proj)."}
    )
    block_pattern: str | None = field(
        default=None,
        metadata={
            "help": "A teacher family hf_lowrank's table does not know: a regular expression the full names of its "
            "block modules match (e.g. 'model\\.encoder\\.layers\\.\\d+'). Its encoder linears are the "
            "nn.Linear layers inside the blocks."
        },
    )
    block_attention_output: str | None = field(
        default=None,
        metadata={"help": "With --block_pattern: the module in a block whose output is the attention output."},
    )
    block_mlp_output: str | None = field(
        default=None,
        metadata={"help": "With --block_pattern: the module in a block whose output is the MLP output."},
    )
    init: str = field(
        default="auto",
        metadata={
            "help": f"How each student's factors start: {init_help()}. "
            "The data-aware ones gather their statistics once, on --calibration_samples training examples. auto: "
            "whitened for a --teacher (a pretrained model: the svd start leaves its students at chance at small "
            "ranks, README 'Pretrained teachers'), svd for the embedded teachers trained from scratch and for Lift "
            "/ WideLast students.",
            "choices": ["auto", *INITS],
        },
    )
    init_alpha: float = field(default=0.5, metadata={"help": "The activation init's exponent alpha (>= 0)."})
    calibration_samples: int = field(
        default=256,
        metadata={
            "help": "Training examples (a seeded draw with --seed) the teacher sees once to gather the calibration "
            "statistics of the data-aware inits, the previews and --param_budget (0: none; then only svd works)."
        },
    )
    preview_inits: list[str] | None = field(
        default=None,
        metadata={
            "help": "Inits whose training-free preview curve is measured: every rank's student evaluated right "
            "after initialisation, before distillation (seconds), shown in the report beside the trained curve "
            "('none': no preview). Default: svd, whitened and activation (svd alone with --calibration_samples 0; "
            "none with --student_bridge)."
        },
    )
    preview_only: bool = field(
        default=False,
        metadata={"help": "Measure the teacher and the preview curves only: no student is distilled."},
    )
    param_budget: list[float] | None = field(
        default=None,
        metadata={
            "help": "Also distil, per budget, one student whose per-layer ranks are allocated greedily from the "
            "whitened spectra (output error removed per parameter) within that many encoder-linear parameters (a "
            "fraction in (0, 1] of the dense encoder linears, or a count > 1), beside the uniform-rank student of "
            "the same budget (the largest rank within it, added to the swept ranks)."
        },
    )
    curve: str = field(
        default="lockstep",
        metadata={
            "help": "How the accuracy-rank curve is trained: lockstep (one student per rank, the papers'), nested "
            "(one student at the largest rank whose every rank-r prefix is distilled, truncated views of the "
            "same factors; each rank then saved as an ordinary student) or both (side by side: nested students "
            "go to nested-rank-XXX/ and the report shows both curves).",
            "choices": ["lockstep", "nested", "both"],
        },
    )
    nested_strategy: str = field(
        default="sample",
        metadata={
            "help": "Nested: per batch, sample --nested_samples ranks of --ranks (sample) or distil all of them "
            "with --nested_weights (sum).",
            "choices": list(NESTED_STRATEGIES),
        },
    )
    nested_samples: int = field(
        default=4,
        metadata={
            "help": "Nested, sample: ranks distilled per batch (the largest one included, and the smallest with "
            "--nested_sandwich; the default 4 is capped at the number of ranks)."
        },
    )
    nested_distribution: str = field(
        default="uniform",
        metadata={
            "help": "Nested, sample: how the other ranks are drawn: uniform over the list, or log_uniform "
            "(probability 1 / rank).",
            "choices": list(NESTED_DISTRIBUTIONS),
        },
    )
    nested_sandwich: bool = field(
        default=True,
        metadata={
            "help": "Nested, sample: distil the smallest rank at every batch as well as the largest (the sandwich "
            "rule of slimmable networks); --nested_samples above 2 draws the others from between them (default "
            "on, with 4 ranks per batch and --nested_inplace_weight 1: the best nested curve of "
            "benchmarks/bench_rank_search.py)."
        },
    )
    nested_inplace_weight: float = field(
        default=1.0,
        metadata={
            "help": "Nested: in-place distillation: every smaller rank of a batch also distils the largest rank's "
            "logits (detached), a KD term (--temperature) of this weight beside its loss against the teacher "
            "(0: none)."
        },
    )
    nested_weights: list[float] | None = field(
        default=None,
        metadata={"help": "Nested, sum: one loss weight per rank of --ranks, in increasing rank order (default: 1)."},
    )
    nested_finetune_steps: int = field(
        default=100,
        metadata={
            "help": "Nested: optimizer steps each truncated rank is then fine-tuned alone (in lock-step, same "
            "distillation) before it is evaluated and saved (0: none; 100 from benchmarks/bench_nested.py: it cut "
            "the nested curve's gap to the per-rank students at ranks 1-4 by 44 to 74 percent)."
        },
    )
    student_bridge: str = field(
        default="none",
        metadata={
            "help": "none: LowRank students (every family); lift or widelast: the encoding-mismatch paper's bridges "
            "on factorized ViT students (a projector kept after the last block, or the last block kept dense), "
            "distilled with MSE on the final tokens plus the logit term.",
            "choices": list(BRIDGE_CHOICES),
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
    teacher_num_train_epochs: float | None = field(
        default=None,
        metadata={
            "help": "Epochs of the teacher stage (default: 30 for the embedded teachers, trained from scratch; 3 for "
            "a --teacher, fine-tuned from its pretrained weights)."
        },
    )
    teacher_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate of the teacher stage (default: 2e-3 for the embedded teachers; 1e-4 for a "
            "--teacher: 2e-3 leaves a pretrained MiniLM at chance, README 'Pretrained teachers')."
        },
    )
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
    validation_split: float | None = field(
        default=None,
        metadata={
            "help": "A validation split carved from the training split, stratified and seeded (--seed): a fraction "
            "(0 < x < 1) or a count (an integer). Students (and a fine-tuned teacher) are evaluated on it during "
            "training with --eval_strategy, for learning curves, --load_best_model_at_end and "
            "--early_stopping_patience; never on the test split the report's accuracies come from. Default: none."
        },
    )
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
    measure_latency: bool = field(
        default=True,
        metadata={
            "help": "Measure the teacher's and every student's forward-pass latency at batch 1 and the eval batch "
            "(median of --latency_repeats after 3 warm-up passes, on the sweep's device, each student in its eager "
            "inference layout: layers at or above their break-even rank merged to dense), for report.md and the "
            "cards (main process only; false: not measured)."
        },
    )
    latency_repeats: int = field(
        default=10, metadata={"help": "--measure_latency: timed forward passes per model and batch size (>= 1)."}
    )
    push_ranks: list[str] | None = field(
        default=None,
        metadata={
            "help": "With --push_to_hub: the students to push, 'all' (default: the rank and the budget students), "
            "'knee', 'region', 'budgets' (the --param_budget students) or rank numbers. Students go to "
            "HUB_MODEL_ID-rank-XXX and HUB_MODEL_ID-budget-B, the report to HUB_MODEL_ID."
        },
    )
    config: str | None = field(default=None, metadata={"help": "YAML file of arguments; command-line flags win."})

    def __post_init__(self):
        check_choices(self)
        if self.init == "auto":
            self.init = "svd" if self.teacher is None or self.student_bridge != "none" else "whitened"
        check_patterns(self)
        check_factorization(self)
        check_nested(self)
        check_rank_search(self)
        check_inert(self)
        if self.teacher_finetune != "none":  # else they are inert, recorded at their defaults (None)
            recipe = EMBEDDED_TEACHER_RECIPE if self.teacher is None else PRETRAINED_TEACHER_RECIPE
            for name, value in recipe.items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        check_values(self)

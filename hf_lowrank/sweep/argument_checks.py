"""Every check of the sweep's arguments that needs no teacher, in one place: the choices and their combinations
(`check_choices`), the numbers (`check_values`), the factorization and nested-curve flags (--init, --preview_inits,
--calibration_samples, --param_budget, --curve, --nested_*), the block patterns, the flags a run's other flags leave
without effect (`inert_flags`: a value set there is refused, and the fingerprint keeps their defaults), and the
training arguments against the sweep (`check_arguments`, with `distillation.check_training_arguments`).
`SweepArguments.__post_init__` and `run_sweep` run them; each raises `SweepError` naming the flag, the value and what
is valid. The checks against the loaded teacher are `teacher_checks.py`'s."""

import math
import re
from dataclasses import MISSING, fields

from ..data import DIGITS
from ..distillation import check_training_arguments, plain_value
from ..factorization import DATA_AWARE_INITS, DEFAULT_PREVIEW_INITS, INITS
from ..hub import BUDGETS
from ..models import BRIDGES, CNN_CAPACITIES


__all__ = [
    "BRIDGE_CHOICES",
    "EMBEDDED_ARCHITECTURES",
    "FINETUNE_MODES",
    "PUSH_CHOICES",
    "SweepError",
    "check_arguments",
    "check_choices",
    "check_factorization",
    "check_inert",
    "check_nested",
    "check_patterns",
    "check_values",
    "inert_flags",
]

FINETUNE_MODES = ("auto", "full", "lora", "none")
PUSH_CHOICES = ("all", "knee", "region", BUDGETS)  # --push_ranks' words (rank numbers besides)
EMBEDDED_ARCHITECTURES = ("vit", "deit", "beit", "dinov2", "swin", "convnext")
BRIDGE_CHOICES = ("none", *BRIDGES)  # --student_bridge: none, or a BridgedViT student (Lift / WideLast)


class SweepError(ValueError):
    """Bad sweep input, found before training wherever it can be checked up front."""


def check_choices(sweep) -> None:
    """The choices and combinations of `SweepArguments` read before anything is resolved: bridges, CNN capacities,
    the teacher stage, ranks, seeds, the embedded family, the block flags, the dataset, --push_ranks."""
    if sweep.student_bridge not in BRIDGE_CHOICES:
        raise SweepError(f"--student_bridge {sweep.student_bridge!r}: must be one of {', '.join(BRIDGE_CHOICES)}.")
    if sweep.student_hidden_size is not None and sweep.student_bridge == "none":
        raise SweepError(
            f"--student_hidden_size {sweep.student_hidden_size} needs --student_bridge lift or widelast to reach "
            "the teacher's width."
        )
    if sweep.student_hidden_size is not None and (
        sweep.student_num_attention_heads is None or sweep.student_hidden_size % sweep.student_num_attention_heads
    ):
        raise SweepError(
            f"--student_num_attention_heads {sweep.student_num_attention_heads}: must be given and divide "
            f"--student_hidden_size {sweep.student_hidden_size}."
        )
    if sweep.student_bridge != "none" and sweep.exclude_modules:
        raise SweepError(
            f"--exclude_modules {sweep.exclude_modules}: applies to the LowRank students; with --student_bridge "
            f"{sweep.student_bridge}, leave it unset."
        )
    unknown = [c for c in sweep.cnn_students or [] if c not in CNN_CAPACITIES]
    if unknown or len(set(sweep.cnn_students or [])) != len(sweep.cnn_students or []):
        raise SweepError(f"--cnn_students {sweep.cnn_students}: must be distinct among {list(CNN_CAPACITIES)}.")
    if sweep.teacher_finetune not in FINETUNE_MODES:
        raise SweepError(f"--teacher_finetune {sweep.teacher_finetune!r}: must be one of {FINETUNE_MODES}.")
    if sweep.ranks is not None:
        if not sweep.ranks:
            raise SweepError("--ranks is empty: give at least one rank, e.g. --ranks 8 16 32.")
        duplicated = sorted({r for r in sweep.ranks if sweep.ranks.count(r) > 1})
        if duplicated:
            raise SweepError(f"--ranks {sweep.ranks}: lists {duplicated} more than once.")
        bad = [r for r in sweep.ranks if isinstance(r, bool) or not isinstance(r, int) or r < 1]
        if bad:
            raise SweepError(f"--ranks {sweep.ranks}: must be positive integers, got {bad}.")
    if sweep.seeds is not None and (not sweep.seeds or len(set(sweep.seeds)) != len(sweep.seeds)):
        raise SweepError(f"--seeds {sweep.seeds}: must be a non-empty list without repeats.")
    if sweep.teacher is None and sweep.teacher_finetune == "none":
        raise SweepError(
            "--teacher_finetune none without --teacher would distil from the embedded teacher untrained (a "
            "chance-level baseline); leave it at auto, or give a trained --teacher."
        )
    if sweep.teacher_architecture not in EMBEDDED_ARCHITECTURES:
        raise SweepError(
            f"--teacher_architecture {sweep.teacher_architecture!r}: must be one of {list(EMBEDDED_ARCHITECTURES)}."
        )
    if sweep.teacher is not None and sweep.teacher_architecture != "vit":
        raise SweepError(
            f"--teacher_architecture {sweep.teacher_architecture} chooses the embedded teacher's family; with "
            f"--teacher {sweep.teacher!r} the teacher's own family is used: leave it unset."
        )
    if (sweep.block_attention_output is not None or sweep.block_mlp_output is not None) != (
        sweep.block_pattern is not None
    ) or (sweep.block_pattern is not None and sweep.block_mlp_output is None):
        raise SweepError(
            f"--block_pattern {sweep.block_pattern!r}, --block_mlp_output {sweep.block_mlp_output!r}: a family "
            "named by hand needs both (and optionally --block_attention_output); without --block_pattern, "
            "leave the other two unset."
        )
    if sweep.teacher is None and sweep.dataset != DIGITS:
        raise SweepError(f"--teacher is required for dataset {sweep.dataset!r}; only 'digits' has an embedded one.")
    bad_push = [p for p in sweep.push_ranks or [] if p not in PUSH_CHOICES and not str(p).isdigit()]
    if bad_push:
        raise SweepError(
            f"--push_ranks {sweep.push_ranks}: entries must be {', '.join(PUSH_CHOICES)} or rank numbers, got "
            f"{bad_push}."
        )
    if sweep.lockstep_group_size < 0:
        raise SweepError(
            f"--lockstep_group_size {sweep.lockstep_group_size}: must be >= 0 (0: all pending ranks at once)."
        )


def check_values(sweep) -> None:
    """Numbers that would train nothing, or measure nonsense, named with their value and what is valid."""
    problems = []

    def need(ok: bool, name: str, valid: str):
        if not ok:
            problems.append(f"--{name} {getattr(sweep, name)!r}: must be {valid}")

    finite = math.isfinite
    need(
        sweep.teacher_num_train_epochs is None
        or (finite(sweep.teacher_num_train_epochs) and sweep.teacher_num_train_epochs > 0),
        "teacher_num_train_epochs",
        "a finite number > 0",
    )
    need(
        sweep.teacher_learning_rate is None
        or (finite(sweep.teacher_learning_rate) and sweep.teacher_learning_rate > 0),
        "teacher_learning_rate",
        "a finite number > 0",
    )
    need(
        finite(sweep.teacher_weight_decay) and sweep.teacher_weight_decay >= 0,
        "teacher_weight_decay",
        "a finite number >= 0",
    )
    need(sweep.lora_rank >= 1, "lora_rank", "an integer >= 1")
    need(sweep.max_seq_length >= 2, "max_seq_length", "an integer >= 2")
    need(all(finite(s) and s >= 0 for s in sweep.noise_sigmas), "noise_sigmas", "finite numbers >= 0 (0: none)")
    need(sweep.diagnostics_examples >= 0, "diagnostics_examples", "an integer >= 0 (0: no diagnostics)")
    need(sweep.latency_repeats >= 1, "latency_repeats", "an integer >= 1 (--measure_latency false: no measurement)")
    need(sweep.max_train_samples is None or sweep.max_train_samples >= 1, "max_train_samples", "an integer >= 1")
    need(sweep.max_test_samples is None or sweep.max_test_samples >= 1, "max_test_samples", "an integer >= 1")
    need(sweep.student_hidden_size is None or sweep.student_hidden_size >= 1, "student_hidden_size", ">= 1")
    need(all(0 <= s < 2**32 for s in sweep.seeds or []), "seeds", "integers in [0, 2**32 - 1]")
    split = sweep.validation_split
    need(
        split is None or (finite(split) and (0 < split < 1 or (split >= 1 and float(split).is_integer()))),
        "validation_split",
        "a fraction in (0, 1) or a count (an integer >= 1) of training examples",
    )
    if problems:
        raise SweepError("; ".join(problems) + ".")


def check_arguments(sweep, args) -> None:
    """Refuse, before any work, training arguments the sweep would ignore or that would train nonsense."""
    problems = check_training_arguments(args)
    if args.data_seed is not None and len(sweep.seeds or []) > 1:
        problems.append(
            f"--data_seed {args.data_seed} with --seeds {sweep.seeds}: every seed would see one data order, and the "
            "SVD-initialised students would come out identical; leave --data_seed unset"
        )
    if plain_value(args.eval_strategy) != "no" and sweep.validation_split is None:
        problems.append(
            f"--eval_strategy {plain_value(args.eval_strategy)} needs a validation split to evaluate on: add "
            "--validation_split (a fraction such as 0.1, or a count); the test split is never used during training"
        )
    if sweep.validation_split is not None and plain_value(args.eval_strategy) == "no":
        problems.append(
            f"--validation_split {sweep.validation_split} without --eval_strategy steps or epoch would only take "
            "examples from training; add --eval_strategy, or leave --validation_split unset"
        )
    if args.push_to_hub and not args.hub_model_id:
        problems.append("--push_to_hub needs --hub_model_id, the repository prefix (e.g. my-name/vit-b32-cifar100)")
    if problems:
        raise SweepError("; ".join(problems) + ".")


def check_factorization(sweep) -> None:
    """--init, --preview_inits, --calibration_samples and --param_budget: valid names, and what they need."""
    if sweep.init not in INITS:
        raise SweepError(f"--init {sweep.init!r}: must be one of {list(INITS)}.")
    if sweep.preview_inits is None:
        calibrated = sweep.calibration_samples > 0  # else only the inits without calibration can be previewed
        defaults = [init for init in DEFAULT_PREVIEW_INITS if calibrated or init not in DATA_AWARE_INITS]
        defaults += [sweep.init] if sweep.init not in defaults else []
        sweep.preview_inits = defaults if sweep.student_bridge == "none" else []
    previews = [] if sweep.preview_inits in ([], ["none"]) else list(sweep.preview_inits)
    bad = [name for name in previews if name not in INITS]
    repeated = sorted({name for name in previews if previews.count(name) > 1})
    if bad or repeated:
        what = f"unknown {bad}" if bad else f"{repeated} more than once"
        raise SweepError(
            f"--preview_inits {sweep.preview_inits}: must be distinct among {list(INITS)}, or 'none'; got {what}."
        )
    sweep.preview_inits = previews
    if sweep.calibration_samples < 0:
        raise SweepError(f"--calibration_samples {sweep.calibration_samples}: must be an integer >= 0.")
    if not (math.isfinite(sweep.init_alpha) and sweep.init_alpha >= 0):
        raise SweepError(f"--init_alpha {sweep.init_alpha!r}: must be a finite number >= 0.")
    needs = sorted({sweep.init, *previews} & set(DATA_AWARE_INITS))
    needs += ["--param_budget"] if sweep.param_budget else []
    if needs and sweep.calibration_samples == 0:
        raise SweepError(
            f"--calibration_samples 0: {', '.join(needs)} need calibration statistics of the teacher's inputs; "
            "give --calibration_samples N (e.g. 256), or use --init svd, --preview_inits svd and no "
            "--param_budget."
        )
    if sweep.preview_only and sweep.student_bridge != "none":
        raise SweepError(
            f"--preview_only with --student_bridge {sweep.student_bridge}: the previews measure the LowRank "
            "students at initialisation, and Lift / WideLast students have none; leave one of the two unset."
        )
    if sweep.student_bridge != "none" and (sweep.init != "svd" or sweep.param_budget or previews):
        raise SweepError(
            f"--student_bridge {sweep.student_bridge}: its students start from the plain SVD and one rank "
            "everywhere; leave --init at svd, --param_budget unset and --preview_inits none."
        )
    if sweep.preview_only and not previews:
        raise SweepError("--preview_only with --preview_inits none would measure nothing; name at least one init.")
    if sweep.preview_only and (sweep.param_budget or sweep.cnn_students or sweep.seeds):
        raise SweepError("--preview_only distils no student: leave --param_budget, --cnn_students and --seeds unset.")
    if sweep.param_budget is not None:
        budgets = sweep.param_budget
        bad = [b for b in budgets if not (math.isfinite(b) and (0 < b <= 1 or (b > 1 and float(b).is_integer())))]
        if not budgets or bad or len(set(budgets)) != len(budgets):
            raise SweepError(
                f"--param_budget {budgets}: each must be a fraction in (0, 1] of the dense encoder linears' "
                f"parameters or a whole parameter count > 1, without repeats; got {bad or budgets}."
            )


def check_nested(sweep) -> None:
    """--curve and the --nested_* flags: valid values, and what nested training supports."""
    if sweep.curve not in ("lockstep", "nested", "both"):
        raise SweepError(f"--curve {sweep.curve!r}: must be lockstep, nested or both.")
    if sweep.curve == "lockstep":
        return
    if sweep.student_bridge != "none":
        raise SweepError(
            f"--curve {sweep.curve} with --student_bridge {sweep.student_bridge}: nested training truncates "
            "the LowRank students; Lift / WideLast students are trained per rank (--curve lockstep)."
        )
    if sweep.preview_only or sweep.param_budget:
        raise SweepError(f"--curve {sweep.curve}: leave --preview_only and --param_budget unset.")
    if sweep.nested_finetune_steps < 0:
        raise SweepError(f"--nested_finetune_steps {sweep.nested_finetune_steps}: must be an integer >= 0.")
    count = len(sweep.ranks) if sweep.ranks else None
    # The default (4) is capped at the number of ranks (one rank: every batch distils it alone); a value given is
    # checked as given.
    given = sweep.nested_samples != _default("nested_samples", sweep)
    if sweep.nested_samples < 1 or (given and count is not None and sweep.nested_samples > count):
        raise SweepError(f"--nested_samples {sweep.nested_samples}: must be in [1, {count or 'the number of ranks'}].")
    if sweep.nested_sandwich and sweep.nested_samples < 2:
        raise SweepError(
            f"--nested_sandwich with --nested_samples {sweep.nested_samples}: the sandwich rule distils the smallest "
            "and the largest rank every batch; use --nested_samples 2 or more, or --nested_sandwich false."
        )
    if not (math.isfinite(sweep.nested_inplace_weight) and sweep.nested_inplace_weight >= 0):
        raise SweepError(f"--nested_inplace_weight {sweep.nested_inplace_weight}: must be a finite number >= 0.")
    if sweep.nested_weights is not None:
        if sweep.nested_strategy != "sum":
            raise SweepError("--nested_weights applies to --nested_strategy sum; leave it unset with sample.")
        if count is None or len(sweep.nested_weights) != count:
            raise SweepError(
                f"--nested_weights {sweep.nested_weights}: needs --ranks and one weight per rank "
                f"({count if count is not None else 'no --ranks given'}), got {len(sweep.nested_weights)}."
            )
        if not all(math.isfinite(w) and w >= 0 for w in sweep.nested_weights) or not any(sweep.nested_weights):
            raise SweepError(f"--nested_weights {sweep.nested_weights}: must be finite, >= 0 and not all 0.")


def check_rank_search(sweep) -> None:
    """--ranks auto (`adaptive_ranks`), --rank_tolerance and --max_students: valid values, and what the search can
    be combined with."""
    if not sweep.adaptive_ranks:
        return
    if sweep.ranks:
        raise SweepError(f"--ranks auto and --ranks {sweep.ranks}: give one of them.")
    if not (math.isfinite(sweep.rank_tolerance) and sweep.rank_tolerance > 0):
        raise SweepError(f"--rank_tolerance {sweep.rank_tolerance!r}: must be a finite number of octaves > 0.")
    if sweep.max_students is not None and sweep.max_students < 3:
        raise SweepError(f"--max_students {sweep.max_students}: must be an integer >= 3 (a curve needs 3 ranks).")
    level = sweep.rank_search_preview_level
    if not (math.isfinite(level) and level > 0):
        raise SweepError(
            f"--rank_search_preview_level {level!r}: must be a finite fraction of the teacher's accuracy > 0 (0.99 "
            "by default; 2 trains every rank)."
        )
    if sweep.curve != "lockstep":
        raise SweepError(
            f"--ranks auto with --curve {sweep.curve}: nested training draws from a rank list fixed up front; give "
            "--ranks, or use --curve lockstep."
        )
    if sweep.preview_only:
        raise SweepError("--ranks auto with --preview_only: the search reads trained students; give --ranks.")


def check_patterns(sweep) -> None:
    """--block_pattern and --exclude_modules are regular expressions: a malformed one is refused by name."""
    for flag, patterns in (("block_pattern", [sweep.block_pattern]), ("exclude_modules", sweep.exclude_modules)):
        for pattern in patterns or []:
            if pattern is None:
                continue
            try:
                re.compile(pattern)
            except re.error as error:
                raise SweepError(
                    f"--{flag} {pattern!r}: not a valid regular expression ({error}); escape literal dots, "
                    "brackets and parentheses with a backslash."
                ) from None


def _default(name: str, sweep):
    field = next(f for f in fields(sweep) if f.name == name)
    return field.default if field.default is not MISSING else field.default_factory()


# Values a flag may take even where it has no effect: they say "none" (no calibration examples at all).
_ALWAYS_ACCEPTED = {"calibration_samples": 0}


def inert_flags(sweep) -> dict[str, str]:
    """flag -> why it has no effect in this run, for every flag that the run's other flags leave without effect.
    Run after `check_factorization` (which resolves the default --preview_inits)."""
    inert = {}
    uses = {sweep.init, *sweep.preview_inits}
    if "activation" not in uses:
        inert["init_alpha"] = (
            "it is the exponent of the activation init, which this run uses neither as --init "
            f"({sweep.init}) nor in --preview_inits ({', '.join(sweep.preview_inits) or 'none'})"
        )
    if not (uses & set(DATA_AWARE_INITS)) and not sweep.param_budget:
        inert["calibration_samples"] = (
            f"only the data-aware inits ({', '.join(DATA_AWARE_INITS)}) and --param_budget read calibration "
            f"examples, and this run uses none of them (--init {sweep.init}, --preview_inits "
            f"{', '.join(sweep.preview_inits) or 'none'})"
        )
    if sweep.curve == "lockstep":
        for name in (
            "nested_strategy",
            "nested_samples",
            "nested_distribution",
            "nested_finetune_steps",
            "nested_sandwich",
            "nested_inplace_weight",
        ):
            inert[name] = "it applies to --curve nested or both, and this run trains --curve lockstep"
    elif sweep.nested_strategy == "sum":
        for name in ("nested_samples", "nested_distribution", "nested_sandwich"):
            inert[name] = "it applies to --nested_strategy sample, and this run uses sum"
    if not sweep.adaptive_ranks:
        for name in ("rank_tolerance", "max_students", "rank_search_preview_level"):
            inert[name] = "it applies to --ranks auto, and this run sweeps the ranks given (or the default ones)"
    if not sweep.measure_latency:
        inert["latency_repeats"] = "it applies to --measure_latency, and this run has --measure_latency false"
    if sweep.teacher_finetune != "lora":
        inert["lora_rank"] = f"it applies to --teacher_finetune lora, and this run uses {sweep.teacher_finetune}"
    if sweep.teacher_finetune == "none":
        for name in ("teacher_num_train_epochs", "teacher_learning_rate", "teacher_weight_decay"):
            inert[name] = "it configures the teacher's fine-tuning, and this run has --teacher_finetune none"
    if sweep.student_hidden_size is None:
        inert["student_num_attention_heads"] = "it applies to narrow students, with --student_hidden_size"
    if sweep.teacher is None:
        inert["max_seq_length"] = "it applies to text teachers, and the embedded teachers are image classifiers"
    return inert


def check_inert(sweep) -> None:
    """Refuse a value given to a flag that has no effect in this run (`inert_flags`): it would change nothing,
    yet a rerun with another value would look like another configuration."""
    problems = [
        f"--{name} {getattr(sweep, name)!r} has no effect: {why}; leave it unset"
        for name, why in inert_flags(sweep).items()
        if getattr(sweep, name) not in (_default(name, sweep), _ALWAYS_ACCEPTED.get(name))
    ]
    if problems:
        raise SweepError("; ".join(problems) + ".")

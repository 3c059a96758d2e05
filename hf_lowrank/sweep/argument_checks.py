"""The checks of `SweepArguments`' factorization and nested-curve flags (--init, --preview_inits,
--calibration_samples, --param_budget, --curve, --nested_*): valid values, and what each needs or excludes; the
block patterns; and the flags a run's other flags leave without effect (`inert_flags`: a value set there is refused,
and the fingerprint keeps their defaults). `SweepArguments.__post_init__` runs them; each raises `SweepError`
naming the flag, the value and what is valid."""

import math
import re
from dataclasses import MISSING, fields

from ..factorization import DATA_AWARE_INITS, DEFAULT_PREVIEW_INITS, INITS


__all__ = ["SweepError", "check_factorization", "check_inert", "check_nested", "check_patterns", "inert_flags"]


class SweepError(ValueError):
    """Bad sweep input, found before training wherever it can be checked up front."""


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
            f"--preview_only with --student_bridge {sweep.student_bridge}: the previews measure FactorizedViT / "
            "LowRank students at initialisation, and Lift / WideLast students have none; leave one of the two unset."
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
            "FactorizedViT / LowRank students; Lift / WideLast students are trained per rank (--curve lockstep)."
        )
    if sweep.preview_only or sweep.param_budget:
        raise SweepError(f"--curve {sweep.curve}: leave --preview_only and --param_budget unset.")
    if sweep.nested_finetune_steps < 0:
        raise SweepError(f"--nested_finetune_steps {sweep.nested_finetune_steps}: must be an integer >= 0.")
    count = len(sweep.ranks) if sweep.ranks else None
    # The default (2) is capped at the number of ranks (one rank: every batch distils it alone); a value given is
    # checked as given.
    given = sweep.nested_samples != _default("nested_samples", sweep)
    if sweep.nested_samples < 1 or (given and count is not None and sweep.nested_samples > count):
        raise SweepError(f"--nested_samples {sweep.nested_samples}: must be in [1, {count or 'the number of ranks'}].")
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
        for name in ("nested_strategy", "nested_samples", "nested_distribution", "nested_finetune_steps"):
            inert[name] = "it applies to --curve nested or both, and this run trains --curve lockstep"
    elif sweep.nested_strategy == "sum":
        for name in ("nested_samples", "nested_distribution"):
            inert[name] = "it applies to --nested_strategy sample, and this run uses sum"
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

"""The checks of `SweepArguments`' factorization and nested-curve flags (--init, --preview_inits,
--calibration_samples, --param_budget, --curve, --nested_*): valid values, and what each needs or excludes.
`SweepArguments.__post_init__` runs them; each raises `SweepError` naming the flag, the value and what is valid."""

import math

from ..models import DATA_AWARE_INITS, INITS


__all__ = ["SweepError", "check_factorization", "check_nested"]


class SweepError(ValueError):
    """Bad sweep input, found before training wherever it can be checked up front."""


def check_factorization(sweep) -> None:
    """--init, --preview_inits, --calibration_samples and --param_budget: valid names, and what they need."""
    if sweep.init not in INITS:
        raise SweepError(f"--init {sweep.init!r}: must be one of {list(INITS)}.")
    if sweep.preview_inits is None:
        data_aware = ["whitened", "activation"] if sweep.calibration_samples > 0 else []
        defaults = ["svd", *data_aware] + ([sweep.init] if sweep.init not in ("svd", *data_aware) else [])
        sweep.preview_inits = defaults if sweep.student_bridge == "none" else []
    previews = [] if sweep.preview_inits in ([], ["none"]) else list(sweep.preview_inits)
    bad = [name for name in previews if name not in INITS]
    if bad or len(set(previews)) != len(previews):
        raise SweepError(
            f"--preview_inits {sweep.preview_inits}: must be distinct among {list(INITS)}, or 'none'; got {bad}."
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
    if sweep.nested_samples < 1 or (count is not None and sweep.nested_samples > count):
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

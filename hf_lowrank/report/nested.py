"""The report's nested curve (`--curve both`): the students cut from one nested student beside the lock-step
students of the same ranks, each curve with its region, knee and AURAC, the difference per rank with a paired 95%
interval, and what each curve's training cost."""

import numpy as np

from ..analysis import aurac, bootstrap_intervals, paired_difference_interval, summarize_curve
from ..results import SweepResults


__all__ = ["curve_aurac", "nested_section"]


def curve_aurac(summary) -> float | None:
    """The AURAC of a fitted curve, None without one (fewer than two ranks)."""
    return aurac(summary.curve) if summary is not None and summary.curve is not None else None


def nested_section(results: SweepResults, low: float, high: float, num_bootstrap: int, seed: int) -> dict | None:
    """The nested curve of the primary seed beside the lock-step one, or None when the sweep ran one curve."""
    primary, teacher = results.primary_seed, results.teacher
    nested = [r for r in results.nested if r.seed == primary and r.status == "done"]
    if not nested:
        return None
    lockstep = {r.rank: r for r in results.done_students(primary)}
    ranks = [r.rank for r in nested]
    summary = summarize_curve(ranks, [r.accuracy for r in nested], teacher.accuracy, low, high)
    intervals = None
    if len(ranks) >= 2 and num_bootstrap > 0:
        correct = np.array([r.correct for r in nested], dtype=float)
        intervals = bootstrap_intervals(ranks, correct, np.asarray(teacher.correct), num_bootstrap, seed, low, high)
    estimated = intervals if summary.estimated else None
    rows = []
    for i, record in enumerate(nested):
        partner = lockstep.get(record.rank)
        difference = interval = None
        if partner is not None:
            difference = record.accuracy - partner.accuracy
            if num_bootstrap > 0:
                interval = list(paired_difference_interval(record.correct, partner.correct, num_bootstrap, seed))
        rows.append(
            {
                "rank": record.rank,
                "accuracy": record.accuracy,
                "normalized_accuracy": record.normalized_accuracy,
                "accuracy_interval": list(intervals["accuracy"][i]) if intervals else None,
                "lockstep_accuracy": partner.accuracy if partner else None,
                "difference": difference,
                "difference_interval": interval,
                "model_dir": record.model_dir,
            }
        )
    training = results.nested_training.get(str(primary), {})
    lockstep_seconds = sum(r.train_seconds for r in lockstep.values() if r.rank in ranks)
    return {
        "rows": rows,
        "region": {
            "estimated": summary.estimated,
            "r_low": summary.r_low,
            "r_high": summary.r_high,
            "r_low_interval": list(estimated["r_low"]) if estimated else None,
            "r_high_interval": list(estimated["r_high"]) if estimated else None,
        },
        "knee": {
            "linear": summary.knee,
            "log_rank": summary.knee_log,
            "linear_interval": list(estimated["knee"]) if estimated else None,
        },
        "aurac": curve_aurac(summary),
        "training": training,
        "finetune_steps": nested[0].config.finetune_steps,
        "nested_train_seconds": training.get("train_seconds", 0.0) + sum(r.train_seconds for r in nested)
        if nested[0].config.finetune_steps
        else training.get("train_seconds", 0.0),
        "lockstep_train_seconds": lockstep_seconds,
    }

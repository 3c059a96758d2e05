"""The report's nested curve (`--curve both`): the students cut from one nested student beside the lock-step
students of the same ranks, each curve with its region, knee and AURAC, the difference per rank with a paired 95%
interval, and what each curve's training cost."""

from ..results import SweepResults
from .curve_section import CurveSettings, curve_section, paired_difference


__all__ = ["nested_section"]


def nested_section(results: SweepResults, settings: CurveSettings) -> dict | None:
    """The nested curve of the primary seed beside the lock-step one, or None when the sweep ran one curve."""
    primary, teacher = results.primary_seed, results.teacher
    nested = [r for r in results.nested if r.seed == primary and r.status == "done"]
    if not nested:
        return None
    lockstep = {r.rank: r for r in results.done_students(primary)}
    ranks = [r.rank for r in nested]
    correct = [r.correct for r in nested]
    curve = curve_section(ranks, [r.accuracy for r in nested], correct, teacher.accuracy, teacher.correct, settings)
    intervals = curve.accuracy_intervals
    rows = []
    for i, record in enumerate(nested):
        partner = lockstep.get(record.rank)
        difference, interval = paired_difference(record, partner, settings)
        rows.append(
            {
                "rank": record.rank,
                "accuracy": record.accuracy,
                "normalized_accuracy": record.normalized_accuracy,
                "accuracy_interval": intervals[i] if intervals else None,
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
        "region": curve.region,
        "knee": curve.knee,
        "aurac": curve.aurac,
        "training": training,
        "finetune_steps": nested[0].config.finetune_steps,
        "nested_train_seconds": training.get("train_seconds", 0.0) + sum(r.train_seconds for r in nested)
        if nested[0].config.finetune_steps
        else training.get("train_seconds", 0.0),
        "lockstep_train_seconds": lockstep_seconds,
    }

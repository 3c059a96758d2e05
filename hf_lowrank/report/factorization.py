"""The report's sections on how students start: the training-free preview curves (one per init, with their own
region and knee, and how far they predict the trained curve) and the budget students against uniform ranks."""

from collections import defaultdict

import numpy as np
from scipy.stats import spearmanr

from ..analysis import CurveSummary
from ..results import SweepResults
from .curve_section import CurveSettings, curve_section, paired_difference


__all__ = ["budget_section", "preview_section"]


def _agreement(preview: dict[int, float], trained: dict[int, float]) -> dict | None:
    """How the preview's normalised accuracies compare with the trained ones at the ranks both have."""
    common = sorted(set(preview) & set(trained))
    if not common:
        return None
    gaps = np.array([trained[r] - preview[r] for r in common])  # (common,) trained minus at-init
    rho = None
    if len(common) >= 3 and np.ptp([preview[r] for r in common]) > 0 and np.ptp([trained[r] for r in common]) > 0:
        rho = float(spearmanr([preview[r] for r in common], [trained[r] for r in common]).statistic)
    return {
        "ranks": common,
        "mean_gain": float(gaps.mean()),
        "max_gain": float(gaps.max()),
        "min_gain": float(gaps.min()),
        "spearman": rho,
    }


def preview_section(results: SweepResults, trained: CurveSummary, settings: CurveSettings) -> dict:
    """init -> the preview curve: rows (rank, parameters, accuracy, normalised, 95% interval), region and knees
    with their intervals (`curve_section`), and `agreement` with the trained curve (`mean_gain`: trained minus
    at-init normalised accuracy, averaged over the common ranks; `spearman`: rank correlation of the two; region of
    each)."""
    teacher = results.teacher
    by_init = defaultdict(list)
    for record in results.previews:
        by_init[record.init].append(record)
    trained_points = defaultdict(list)
    for record in results.done_students():
        trained_points[record.rank].append(record.normalized_accuracy)
    trained_by_rank = {rank: float(np.mean(values)) for rank, values in trained_points.items()}
    section = {}
    for init, records in sorted(by_init.items()):
        records.sort(key=lambda r: r.rank)
        correct = [r.correct for r in records] if all(r.correct for r in records) else None
        curve = curve_section(
            [r.rank for r in records],
            [r.accuracy for r in records],
            correct,
            teacher.accuracy,
            teacher.correct,
            settings,
        )
        agreement = _agreement({r.rank: r.normalized_accuracy for r in records}, trained_by_rank)
        if agreement is not None:
            agreement["trained_region"] = [trained.r_low, trained.r_high] if trained.estimated else None
        intervals = curve.accuracy_intervals
        section[init] = {
            "rows": [
                {
                    "rank": r.rank,
                    "parameters": r.parameters,
                    "accuracy": r.accuracy,
                    "normalized_accuracy": r.normalized_accuracy,
                    "accuracy_interval": intervals[i] if intervals else None,
                }
                for i, r in enumerate(records)
            ],
            "region": curve.region,
            "knee": curve.knee,
            "agreement": agreement,
            "aurac": curve.aurac,
        }
    return section


def budget_section(results: SweepResults, settings: CurveSettings) -> list[dict]:
    """One row per finished budget student of the primary seed: its budget, parameters, per-layer ranks, accuracy
    at init and trained, and the uniform-rank student of the same budget beside it (accuracy at init from the
    preview of the sweep's init, trained from the rank students), with a paired 95% interval of the trained
    difference (allocated minus uniform)."""
    primary, teacher = results.primary_seed, results.teacher
    init = results.init
    uniform = {r.rank: r for r in results.done_students(primary)}
    previews = {p.rank: p for p in results.previews if p.init == init}
    rows = []
    for record in results.budget_students:
        if record.seed != primary or record.status != "done":
            continue
        partner = uniform.get(record.uniform_rank)
        difference, interval = paired_difference(record, partner, settings)
        at_init = previews.get(record.uniform_rank)
        rows.append(
            {
                "budget": record.budget,
                "budget_parameters": record.budget_parameters,
                "linear_parameters": record.linear_parameters,
                "parameters": record.parameters,
                "layer_ranks": record.layer_ranks,
                "init_accuracy": record.init_accuracy,
                "accuracy": record.accuracy,
                "normalized_accuracy": record.normalized_accuracy,
                "model_dir": record.model_dir,
                "uniform_rank": record.uniform_rank,
                "uniform_linear_parameters": record.uniform_linear_parameters,
                "uniform_init_accuracy": at_init.accuracy if at_init else None,
                "uniform_accuracy": partner.accuracy if partner else None,
                "difference": difference,
                "difference_interval": interval,
                "teacher_accuracy": teacher.accuracy,
            }
        )
    return rows

"""The effective-rank report of a sweep, built in memory from its `SweepResults`: one curve fit for the region and
knees, bootstrap intervals, and the tables the markdown, the plots and the cards show."""

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..analysis import CurveSummary, summarize_curve
from ..analysis.summary import MIN_RANKS
from ..results import ResultsError, StudentResult, SweepResults
from .curve_section import CurveSettings, curve_section
from .factorization import budget_section, preview_section
from .nested import nested_section


__all__ = ["HEADLINE_KNEE", "METHOD", "Report", "build_report"]

HEADLINE_KNEE = "linear"  # the paper's definition; the log-rank knee is reported beside it
METHOD = (
    "Normalised accuracy n(r) = a(r) / a_T of each student against the teacher's test accuracy. Monotonicity is "
    "enforced on the measured points by isotonic regression (pool adjacent violators: the closest non-decreasing "
    "sequence in least squares), then fitted with a monotone PCHIP interpolant (scipy.interpolate."
    "PchipInterpolator); the raw points are kept in the table. r_x is the smallest rank at which the curve reaches "
    "x (none if it never does within the measured ranks). The knee is the rank maximising the perpendicular "
    "distance from the curve to the secant through its endpoints, on axes normalised to [0, 1]; a curve that never "
    "rises above that secant (flat, linear or convex) has no knee. The headline uses the linear rank axis (the "
    "paper's definition), the log-rank knee is given beside it because ranks are usually spaced geometrically. "
    "Intervals are 95% percentile bootstraps over test examples, resampling the per-example correctness of the "
    "teacher and every student jointly; with several seeds, the per-seed values are given too."
)
TEACHER_FIELDS = (
    "source",
    "accuracy",
    "parameters",
    "finetune",
    "ece",
    "noise_accuracy",
    "diagnostics",
    "model_type",
    "task",
    "latency",
)
CNN_FIELDS = ("capacity", "status", "error", "parameters", "accuracy", "ece", "noise_accuracy", "diagnostics")


@dataclass
class Report:
    """What report.json holds; `summary` (the fitted curve and its estimates) is kept in memory for the plots."""

    teacher: dict
    dataset: dict | None
    distillation_mode: str
    thresholds: dict
    rows: list[dict]
    region: dict
    knee: dict
    teacher_accuracy_interval: list | None = None
    per_seed: dict = field(default_factory=dict)
    bootstrap: dict = field(default_factory=dict)
    cnn_students: list[dict] = field(default_factory=list)
    previews: dict = field(default_factory=dict)  # init -> the training-free curve (report.factorization)
    budget_students: list[dict] = field(default_factory=list)
    init: str = "svd"  # how the trained students' factors started
    distillation: str | None = None  # the loss in words (SweepResults.distillation); None in older reports
    curve: str = "lockstep"  # how the main curve's students were trained (lockstep or nested)
    aurac: float | None = None  # area under the normalised curve over log2(rank), divided by its length
    nested: dict | None = None  # --curve both: the nested curve beside the lock-step one (report.nested)
    factorization: dict | None = None  # calibration: examples, seconds, bytes, fallbacks
    failed: list[dict] = field(default_factory=list)
    # each student evaluated during training (primary seed): rank, validation_history (step, accuracy, loss),
    # best_step, stopped_step
    learning_curves: list[dict] = field(default_factory=list)
    rank_search: list[dict] = field(default_factory=list)  # --ranks auto: the ranks chosen, in order, and why
    notes: list[str] = field(default_factory=list)
    method: str = METHOD
    summary: CurveSummary | None = None
    _markdown: str | None = field(default=None, init=False, repr=False, compare=False)

    def markdown(self) -> str:
        """report.md's text, rendered once: report.md and the sweep's card show this same text."""
        if self._markdown is None:
            from .markdown import render_markdown  # markdown.py renders a Report: imported when first needed

            self._markdown = render_markdown(self)
        return self._markdown

    @property
    def ranks(self) -> list[int]:
        return [row["rank"] for row in self.rows]

    @property
    def estimated(self) -> bool:
        """Whether region and knee were estimated (at least `MIN_RANKS` finished ranks)."""
        return self.region.get("estimated", len(self.rows) >= MIN_RANKS)

    def to_dict(self) -> dict:
        payload = asdict(self)
        payload.pop("summary")
        payload.pop("_markdown")
        return payload

    @classmethod
    def from_dict(cls, payload: dict) -> "Report":
        return cls(**{key: value for key, value in payload.items() if key in cls.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Report":
        """Read a report.json (for scripts that start from a sweep directory)."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ResultsError(f"cannot read the report {path}: {error}.") from error
        if not isinstance(payload, dict):
            raise ResultsError(
                f"{path} is not a report: its top level is a JSON {type(payload).__name__}, not an object."
            )
        try:
            return cls.from_dict(payload)
        except TypeError as error:
            raise ResultsError(f"cannot read the report {path}: {error}.") from error


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _row(rank: int, records: list[StudentResult], accuracy: float, teacher_accuracy: float, interval) -> dict:
    first = records[0]
    return {
        "rank": rank,
        "parameters": first.parameters,
        "compression": first.compression,
        "accuracy": accuracy,
        "normalized_accuracy": accuracy / teacher_accuracy,
        "accuracy_interval": list(interval) if interval is not None else None,
        "seeds": [r.seed for r in records],
        "model_dir": first.model_dir,
        "ece": _mean([r.ece for r in records]),
        "noise_accuracy": {
            sigma: _mean([r.noise_accuracy.get(sigma) for r in records]) for sigma in first.noise_accuracy
        },
        "diagnostics": first.diagnostics,
        "latency": first.latency,
    }


def near_chance_note(accuracy: float, num_labels: int) -> str | None:
    """A warning when a teacher's accuracy is less than a tenth of the way from chance (1 / num_labels) to 1: every
    student's accuracy relative to it then means little."""
    chance = 1 / max(1, num_labels)
    if accuracy >= chance + 0.1 * (1 - chance):
        return None
    return (
        f"The teacher's test accuracy {accuracy:.4f} is near chance ({chance:.4f} for {num_labels} classes): the "
        "students' accuracies relative to it mean little. Train the teacher longer (--teacher_num_train_epochs, "
        "--teacher_learning_rate) or give a fine-tuned --teacher."
    )


def _notes(ranks, accuracies, teacher_accuracy, summary: CurveSummary, num_labels: int | None) -> list[str]:
    notes = []
    chance = near_chance_note(teacher_accuracy, num_labels) if num_labels else None
    if chance:
        notes.append(chance)
    if not summary.estimated:
        notes.append(
            f"Only {len(ranks)} rank(s) finished: the effective rank region and the knee need at least {MIN_RANKS} "
            "and are not estimated."
        )
    above = [rank for rank, a in zip(ranks, accuracies) if a > teacher_accuracy]
    if above:
        notes.append(
            f"Students at ranks {above} score above the teacher (normalised accuracy > 1); kept as measured, the "
            "curve saturates at their level."
        )
    if summary.curve is not None and not summary.curve.was_monotone:
        notes.append(
            "The measured accuracies are not monotone in rank; isotonic regression pooled the violating points "
            "before the PCHIP fit (raw points are in the table)."
        )
    if summary.estimated and summary.knee is None:
        notes.append(f"No knee: {summary.knee_why}.")
    return notes


def _per_seed(done: list[StudentResult], teacher_accuracy: float, settings: CurveSettings) -> dict:
    by_seed = defaultdict(list)
    for record in done:
        by_seed[record.seed].append(record)
    if len(by_seed) < 2:
        return {}
    estimates = {}
    for seed, rows in sorted(by_seed.items()):
        rows.sort(key=lambda r: r.rank)
        ranks, accuracies = [r.rank for r in rows], [r.accuracy for r in rows]
        summary = summarize_curve(ranks, accuracies, teacher_accuracy, settings.low, settings.high)
        estimates[str(seed)] = summary.to_dict()
    return estimates


def build_report(
    results: SweepResults, low: float = 0.85, high: float = 0.95, num_bootstrap: int = 1000, seed: int = 0
) -> Report:
    """The report of `results`. With several seeds, a rank's accuracy is the mean over seeds and an example counts
    as the fraction of seeds that got it right; region and knee are also computed per seed."""
    teacher = results.teacher
    if teacher is None:
        raise ValueError("the results hold no teacher yet: the sweep has not finished its teacher stage.")
    settings = CurveSettings(low, high, num_bootstrap, seed)
    done = results.done_students()
    by_rank = defaultdict(list)
    for record in done:
        by_rank[record.rank].append(record)
    ranks = sorted(by_rank)
    accuracies = [float(np.mean([r.accuracy for r in by_rank[rank]])) for rank in ranks]
    correct = [np.mean([r.correct for r in by_rank[rank]], axis=0) for rank in ranks]
    section = curve_section(ranks, accuracies, correct or None, teacher.accuracy, teacher.correct, settings)
    intervals = section.accuracy_intervals
    return Report(
        teacher={key: getattr(teacher, key) for key in TEACHER_FIELDS},
        dataset=asdict(results.dataset) if results.dataset else None,
        distillation_mode=results.distillation_mode,
        distillation=results.distillation,
        thresholds={"low": low, "high": high},
        rows=[
            _row(rank, by_rank[rank], acc, teacher.accuracy, intervals[i] if intervals else None)
            for i, (rank, acc) in enumerate(zip(ranks, accuracies))
        ],
        region=section.region,
        knee={"headline": HEADLINE_KNEE, **section.knee},
        teacher_accuracy_interval=section.teacher_accuracy_interval,
        per_seed=_per_seed(done, teacher.accuracy, settings),
        bootstrap={"num_samples": num_bootstrap, "seed": seed, "level": 0.95},
        cnn_students=[{key: getattr(r, key) for key in CNN_FIELDS} for r in results.cnn_students],
        previews=preview_section(results, section.summary, settings),
        budget_students=budget_section(results, settings),
        init=results.init,
        curve="nested" if done and done[0].config.curve == "nested" else "lockstep",
        aurac=section.aurac,
        nested=nested_section(results, settings),
        factorization=results.factorization,
        failed=[{"rank": r.rank, "seed": r.seed, "error": r.error} for r in results.ranks if r.status != "done"]
        + [
            {"budget": b.budget, "seed": b.seed, "error": b.error}
            for b in results.budget_students
            if b.status != "done"
        ],
        notes=_notes(
            ranks,
            accuracies,
            teacher.accuracy,
            section.summary,
            len(results.dataset.label_names) if results.dataset else None,
        ),
        learning_curves=[
            {
                "rank": r.rank,
                "validation_history": [list(entry) for entry in r.validation_history],
                "best_step": r.best_step,
                "stopped_step": r.stopped_step,
            }
            for r in sorted(done, key=lambda r: r.rank)
            if r.seed == results.primary_seed and r.validation_history
        ],
        rank_search=list(results.rank_search),
        summary=section.summary,
    )

"""Writing a report into a sweep directory: report.json, report.md and the figures."""

import os
from pathlib import Path

from ..results import atomic_write_json
from .build import Report
from .plots import (
    plot_budget_ranks,
    plot_knee,
    plot_learning_curves,
    plot_params_vs_accuracy,
    plot_representations,
)


__all__ = ["REPORT_FILES", "write_report"]

REPORT_FILES = (
    "report.md",
    "report.json",
    "knee.png",
    "params_vs_accuracy.png",
    "representations.png",
    "budget_ranks.png",
    "learning_curves.png",
)


def write_report(report: Report, output_dir: str | os.PathLike) -> list[str]:
    """Write `report` into `output_dir` (removing a figure an earlier report left when this one has none of its
    kind: representations, budget ranks, learning curves); returns the names written."""
    output_dir = Path(output_dir)
    atomic_write_json(output_dir / "report.json", report.to_dict())
    plot_knee(report, output_dir / "knee.png")
    plot_params_vs_accuracy(report, output_dir / "params_vs_accuracy.png")
    written = ["report.json", "knee.png", "params_vs_accuracy.png"]
    optional = (
        (
            "representations.png",
            report.teacher.get("diagnostics") and any(row.get("diagnostics") for row in report.rows),
            plot_representations,
        ),
        ("budget_ranks.png", report.budget_students, plot_budget_ranks),
        ("learning_curves.png", report.learning_curves, plot_learning_curves),
    )
    for name, shown, plot in optional:
        if shown:
            plot(report, output_dir / name)
            written.append(name)
        else:
            (output_dir / name).unlink(missing_ok=True)
    (output_dir / "report.md").write_text(report.markdown())
    return written + ["report.md"]

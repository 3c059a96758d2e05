"""The effective-rank report of a sweep.

- `build`: `build_report(results) -> Report`, one curve fit, bootstrap intervals, the tables.
- `curve_section`: one curve's fit, intervals, region and knee (`CurveSettings`: thresholds and bootstrap), the same
  builder for the trained, preview and nested curves.
- `formatting`: the number formats the report, the cards and the console share.
- `markdown`, `plots`: report.md and the figures; `write`: all of them into a sweep directory.
"""

from .build import HEADLINE_KNEE, METHOD, Report, build_report, near_chance_note
from .curve_section import CurveSection, CurveSettings, curve_section
from .formatting import (
    NOT_ESTIMATED,
    at_smallest_rank_note,
    fmt_interval,
    fmt_rank,
    fmt_share,
    knee_text,
    region_text,
    region_words,
    summary_line,
)
from .latency import latency_conditions, latency_speedup, teacher_milliseconds
from .markdown import render_markdown
from .plots import plot_knee, plot_params_vs_accuracy, plot_representations
from .write import REPORT_FILES, write_report


__all__ = [
    "latency_conditions",
    "latency_speedup",
    "teacher_milliseconds",
    "HEADLINE_KNEE",
    "METHOD",
    "NOT_ESTIMATED",
    "REPORT_FILES",
    "Report",
    "build_report",
    "at_smallest_rank_note",
    "fmt_interval",
    "fmt_share",
    "fmt_rank",
    "knee_text",
    "near_chance_note",
    "plot_knee",
    "plot_params_vs_accuracy",
    "plot_representations",
    "region_text",
    "region_words",
    "CurveSection",
    "CurveSettings",
    "curve_section",
    "render_markdown",
    "summary_line",
    "write_report",
]

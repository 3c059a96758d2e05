"""Formatting of a report's numbers: one set of helpers for the markdown report, the model cards and the console."""

__all__ = ["NOT_ESTIMATED", "fmt_interval", "fmt_rank", "knee_text", "region_text", "summary_line"]

NOT_ESTIMATED = "not estimated (fewer than 3 ranks)"


def fmt_rank(value, digits: int = 1, missing: str = "not reached") -> str:
    """A rank estimate, or `missing` where it is undefined."""
    return missing if value is None else f"{value:.{digits}f}"


def fmt_interval(interval, digits: int = 1) -> str:
    """`[lo, hi]`, with the fraction of resamples where the quantity was undefined; "" without an interval."""
    if not interval:
        return ""
    lo, hi = interval[0], interval[1]
    text = "n/a" if lo is None else f"[{lo:.{digits}f}, {hi:.{digits}f}]"
    if len(interval) > 2 and interval[2]:
        text += f" (undefined in {interval[2]:.0%} of resamples)"
    return text


def region_text(report) -> str:
    """`[r_low, r_high]`, or that it was not estimated."""
    if not report.estimated:
        return NOT_ESTIMATED
    region = report.region
    return f"[{fmt_rank(region['r_low'])}, {fmt_rank(region['r_high'])}]"


def knee_text(report, axis: str = "linear") -> str:
    """The knee on `axis` ("linear" or "log_rank"), "none" when the curve has no knee, or not estimated."""
    if not report.estimated:
        return NOT_ESTIMATED
    return fmt_rank(report.knee[axis], missing="none")


def summary_line(report) -> str:
    """The one-line console summary: region and knees."""
    if not report.estimated:
        return f"effective rank region and knee: {NOT_ESTIMATED}"
    return (
        f"effective rank region {region_text(report)}, knee {knee_text(report)} (log-rank axis: "
        f"{knee_text(report, 'log_rank')})"
    )

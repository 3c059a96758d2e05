"""Formatting of a report's numbers: one set of helpers for the markdown report, the model cards and the console."""

__all__ = ["NOT_ESTIMATED", "fmt_interval", "fmt_share", "fmt_rank", "knee_text", "region_text", "summary_line"]

NOT_ESTIMATED = "not estimated (fewer than 3 ranks)"


def fmt_rank(value, digits: int = 1, missing: str = "not reached") -> str:
    """A rank estimate, or `missing` where it is undefined."""
    return missing if value is None else f"{value:.{digits}f}"


def fmt_share(fraction: float) -> str:
    """A fraction in [0, 1] as a percentage with the fewest decimals (up to 4) that neither round it to 0% or 100%
    when it is not exactly that, nor hide which side of a half it is on: 0.998 -> "99.8%", 0.00042 -> "0.04%"."""
    for decimals in range(5):
        text = f"{fraction:.{decimals}%}"
        value = float(text[:-1]) / 100
        if (value in (0.0, 1.0)) == (fraction in (0.0, 1.0)) and (value < 0.5) == (fraction < 0.5):
            return text
    return text


def fmt_interval(interval, digits: int = 1) -> str:
    """`[lo, hi]`, with the share of resamples where the quantity was undefined; "n/a" where the interval was not
    given (defined in too few resamples: `analysis.MIN_DEFINED_SHARE`); "" without an interval."""
    if not interval:
        return ""
    lo, hi = interval[0], interval[1]
    text = "n/a" if lo is None else f"[{lo:.{digits}f}, {hi:.{digits}f}]"
    if len(interval) > 2 and interval[2]:
        text += f" (undefined in {fmt_share(interval[2])} of resamples)"
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

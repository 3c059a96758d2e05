"""Formatting of a report's numbers: one set of helpers for the markdown report, the model cards and the console."""

__all__ = [
    "NOT_ESTIMATED",
    "at_smallest_rank_note",
    "fmt_interval",
    "fmt_rank",
    "fmt_share",
    "knee_text",
    "region_text",
    "region_words",
    "summary_line",
]

NOT_ESTIMATED = "not estimated (fewer than 3 ranks)"


def fmt_rank(value, digits: int = 1, missing: str = "not reached") -> str:
    """A rank estimate, or `missing` where it is undefined."""
    return missing if value is None else f"{value:.{digits}f}"


def fmt_share(fraction: float) -> str:
    """A fraction in [0, 1] as a percentage with the fewest decimals (up to 4) that neither round it to 0% or 100%
    when it is not exactly that, nor move it across one half (the minimum share of resamples): 0.998 -> "99.8%",
    0.501 -> "50.1%", 0.00042 -> "0.04%"; beyond 4 decimals "<0.0001%" or ">99.9999%"."""

    def side(value: float) -> int:
        return (value > 0.5) - (value < 0.5)

    for decimals in range(5):
        text = f"{fraction:.{decimals}%}"
        value = float(text[:-1]) / 100
        if (value in (0.0, 1.0)) == (fraction in (0.0, 1.0)) and side(value) == side(fraction):
            return text
    return "<0.0001%" if fraction < 0.5 else ">99.9999%"


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


def region_words(region: dict, smallest_rank: int | None) -> str:
    """`[r_low, r_high]` of any curve section's `region` (`curve_section`), or that it was not estimated. A threshold
    already reached at `smallest_rank` (the smallest rank measured) is written `<=r`: the curve may cross it below,
    and only smaller ranks would say where."""
    if not region["estimated"]:
        return NOT_ESTIMATED

    def bound(value):
        return f"<={fmt_rank(value)}" if _at_smallest_rank(smallest_rank, value) else fmt_rank(value)

    return f"[{bound(region['r_low'])}, {bound(region['r_high'])}]"


def region_text(report) -> str:
    """The headline region of `report` (`region_words` of its trained curve)."""
    return region_words(report.region, report.ranks[0] if report.rows else None) if report.estimated else NOT_ESTIMATED


def _at_smallest_rank(smallest_rank: int | None, value) -> bool:
    """Whether a threshold rank `value` is at the smallest rank measured (the curve may cross below it)."""
    return value is not None and smallest_rank is not None and value <= smallest_rank


def at_smallest_rank_note(report) -> str | None:
    """A sentence for the thresholds already reached at the smallest rank measured; None when there is none."""
    if not report.estimated:
        return None
    smallest, region = report.ranks[0], report.region
    names = [
        f"r_{report.thresholds[key]:.0%}"
        for key, value in (("low", region["r_low"]), ("high", region["r_high"]))
        if _at_smallest_rank(smallest, value)
    ]
    if not names:
        return None
    return (
        f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} already reached at the smallest rank measured "
        f"({smallest}): the curve may cross below it; add smaller ranks (--ranks) to locate it."
    )


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

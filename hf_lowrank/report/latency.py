"""The latency section of report.md: each model's measured forward-pass time (`--measure_latency`) beside its size,
with the conditions it was measured under."""

__all__ = ["SLOWER_MARGIN", "latency_conditions", "latency_lines", "latency_speedup", "teacher_milliseconds"]

SLOWER_MARGIN = 0.05  # a student is called slower than the teacher beyond this fraction (timings' spread)


def latency_conditions(latency: dict) -> str:
    """The conditions of a `LatencyMeasurement.to_dict()` in words."""
    return (
        f"{latency['device']}, {latency['threads']} threads, torch {latency['torch_version']}, {latency['dtype']}; "
        f"median of {latency['repeats']} forward passes after {latency['warmup']} warm-up passes"
    )


def teacher_milliseconds(latency: dict, teacher_latency: dict | None, batch: str) -> float | None:
    """The teacher's time at `batch` (str(batch size)) to compare a student's `latency` with: the one measured side
    by side with it (`reference_milliseconds`), else the teacher's own measurement (an older sweep)."""
    beside = (latency or {}).get("reference_milliseconds") or {}
    if batch in beside:
        return beside[batch]
    return (teacher_latency or {}).get("milliseconds", {}).get(batch)


def latency_speedup(latency: dict, teacher_latency: dict | None, batch: str) -> float | None:
    """Teacher time / this model's time at `batch` (str(batch size)), the teacher's time measured beside it where it
    was; None when either was not measured there."""
    mine = (latency or {}).get("milliseconds", {}).get(batch)
    theirs = teacher_milliseconds(latency, teacher_latency, batch)
    return theirs / mine if mine and theirs else None


def latency_lines(report) -> list[str]:
    """report.md's "Latency" section: the teacher and every rank student (its first seed's measurement) at each
    measured batch size, in milliseconds, with the speedup over the teacher; nothing when none was measured."""
    teacher = report.teacher.get("latency")
    rows = [row for row in report.rows if row.get("latency")]
    if not teacher or not rows:
        return []
    batches = list(teacher["milliseconds"])
    lines = [
        "## Latency",
        "",
        f"Measured on {latency_conditions(teacher)}. Students run in their eager inference layout "
        "(`for_inference()`: layers at or above 0.8 of their break-even rank merged back to dense; the same "
        "logits); milliseconds per forward pass of the batch. Speedup = teacher time / student time, the teacher "
        "timed again beside each student, passes interleaved (the teacher row: its own measurement, in the teacher "
        "stage).",
        "",
        "| model | parameters | compression | "
        + " | ".join(f"batch {b} (ms) | speedup" for b in batches)
        + " | layout |",
        "| --- | ---: | ---: | " + " | ".join("---: | ---:" for _ in batches) + " | --- |",
        f"| teacher | {report.teacher['parameters']:,} | 1.00x | "
        + " | ".join(f"{teacher['milliseconds'][b]:.2f} | 1.00x" for b in batches)
        + f" | {teacher['layout']} |",
    ]
    for row in rows:
        latency = row["latency"]
        cells = []
        for b in batches:
            ms, speedup = latency["milliseconds"].get(b), latency_speedup(latency, teacher, b)
            cells.append(f"{ms:.2f} | {speedup:.2f}x" if ms and speedup else "- | -")
        lines.append(
            f"| rank {row['rank']} | {row['parameters']:,} | {row['compression']:.2f}x | {' | '.join(cells)} | "
            f"{latency['layout']} |"
        )
    slower = [
        row["rank"] for row in rows if (latency_speedup(row["latency"], teacher, batches[-1]) or 1) < 1 - SLOWER_MARGIN
    ]
    if slower:
        lines += [
            "",
            f"More than {SLOWER_MARGIN:.0%} slower than the teacher at batch {batches[-1]} on this device: rank(s) "
            f"{', '.join(map(str, slower))} (smaller differences are within these timings' run-to-run spread).",
        ]
    return lines + [""]

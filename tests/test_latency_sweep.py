"""The sweep's latency measurements (`--measure_latency`, on by default): the teacher and every student measured at
batch 1 and the eval batch, each student in its inference layout, shown with their conditions in report.md and on the
cards."""

from types import SimpleNamespace

import torch
from transformers import AutoModelForImageClassification

from hf_lowrank import FactorizedLinear
from hf_lowrank.models import DEFAULT_MERGE_AT, break_even_rank
from hf_lowrank.report.latency import latency_lines

from sweep_helpers import FINISHED_RANKS


def test_the_teacher_and_every_student_are_measured_with_their_conditions(finished_sweep):
    output_dir, results = finished_sweep
    eval_batch = min(results["dataset"]["num_test"], results["config"]["training"]["per_device_eval_batch_size"])
    teacher = results["teacher"]["latency"]
    assert set(teacher["milliseconds"]) == {"1", str(eval_batch)} and teacher["layout"] == "eager (the dense teacher)"
    assert teacher["device"].startswith("cpu (") and teacher["torch_version"] == torch.__version__
    assert (teacher["dtype"], teacher["warmup"], teacher["repeats"]) == ("float32", 3, 10)
    assert [s["rank"] for s in results["ranks"]] == list(FINISHED_RANKS)
    for record in results["ranks"]:
        latency = record["latency"]
        assert set(latency["milliseconds"]) == set(latency["reference_milliseconds"]) == set(teacher["milliseconds"])
        assert all(ms > 0 for ms in [*latency["milliseconds"].values(), *latency["reference_milliseconds"].values()])
        student = AutoModelForImageClassification.from_pretrained(output_dir / record["model_dir"])
        layers = [m for m in student.modules() if isinstance(m, FactorizedLinear)]
        merged = sum(layer.rank >= DEFAULT_MERGE_AT * break_even_rank(layer) for layer in layers)
        assert (
            latency["layout"]
            == f"eager inference layout ({merged} of {len(layers)} factorized layers merged to dense)"
        )


def test_report_and_cards_show_latency_beside_the_teacher(finished_sweep):
    output_dir, results = finished_sweep
    teacher = results["teacher"]["latency"]["milliseconds"]
    report = (output_dir / "report.md").read_text()
    own = " | ".join(f"{teacher[b]:.2f} | 1.00x" for b in teacher)
    assert f"| teacher | {results['teacher']['parameters']:,} | 1.00x | {own} | eager (the dense teacher) |" in report
    assert "## Latency" in report and "median of 10 forward passes after 3 warm-up passes" in report
    for record in results["ranks"]:
        mine, beside = record["latency"]["milliseconds"], record["latency"]["reference_milliseconds"]
        cells = " | ".join(
            f"{mine[b]:.2f} | {beside[b] / mine[b]:.2f}x" for b in teacher
        )  # the teacher timed beside it
        assert (
            f"| rank {record['rank']} | {record['parameters']:,} | {record['compression']:.2f}x | {cells} |" in report
        )
        card = (output_dir / record["model_dir"] / "README.md").read_text()
        for batch in teacher:
            speedup = beside[batch] / mine[batch]
            row = (
                f"| latency, batch {batch} (speedup {speedup:.2f}x) | {mine[batch]:.2f} ms | {beside[batch]:.2f} ms |"
            )
            assert row in card
        assert "timed beside it (passes interleaved)" in card
        assert "this student in its eager inference layout" in card


def test_only_students_slower_than_the_teacher_beyond_the_spread_are_called_slower():
    def measured(ms, beside):
        return {
            "milliseconds": {"1": ms, "64": ms},
            "reference_milliseconds": {"1": beside, "64": beside},
            "layout": "eager inference layout",
            "device": "cpu (x)",
            "threads": 2,
            "torch_version": "2",
            "dtype": "float32",
            "warmup": 3,
            "repeats": 10,
        }

    teacher = measured(10.0, 10.0) | {"reference_milliseconds": None, "layout": "eager (the dense teacher)"}
    rows = [
        {"rank": rank, "parameters": 100, "compression": 2.0, "latency": measured(ms, beside)}
        for rank, ms, beside in ((1, 10.4, 10.0), (2, 12.0, 10.0), (3, 5.0, 9.0))
    ]
    report = SimpleNamespace(teacher={"parameters": 200, "latency": teacher}, rows=rows)
    text = "\n".join(latency_lines(report))
    assert "| rank 1 | 100 | 2.00x | 10.40 | 0.96x | 10.40 | 0.96x | eager inference layout |" in text
    assert "| rank 3 | 100 | 2.00x | 5.00 | 1.80x | 5.00 | 1.80x | eager inference layout |" in text  # beside it
    assert "More than 5% slower than the teacher at batch 64 on this device: rank(s) 2 (" in text

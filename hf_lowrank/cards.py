"""Model cards for the students of a sweep and for the sweep as a whole, from results.json and the report.

Rendered with huggingface_hub's `ModelCard.from_template` from the Jinja templates in `model_cards/`.
"""

import os
import shutil
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .report import _fmt, _fmt_interval, render_markdown
from .results import load_results


__all__ = ["TAGS", "select_students", "student_card", "sweep_card", "write_cards"]

BRIDGE_NOTES = {
    "lift": "Lift variant: a linear projector after the last block (initialised to the identity) is kept at "
    "inference, and the student was distilled with MSE on its final tokens plus the logit term.",
    "widelast": "WideLast variant: the last block is not factorized (it stays at the teacher's full capacity), and "
    "the student was distilled with MSE on its final tokens plus the logit term.",
}
TAGS = ["hf_lowrank", "low-rank", "knowledge-distillation", "vision-transformer", "factorized-vit"]


def _template(name: str) -> str:
    return str(resources.files("hf_lowrank.model_cards") / name)


def _hub_id(source: str | None) -> str | None:
    """`source` if it names a Hub repository (not a local path or the embedded teacher)."""
    if not source or os.path.exists(source) or source.startswith("embedded") or source.count("/") != 1:
        return None
    return source


def select_students(results: dict, report: dict, which: list[str] | None) -> list[dict]:
    """Finished primary-seed students chosen by `which`: None or ["all"], "knee" (the measured rank nearest the
    headline knee), "region" (the measured ranks inside the effective rank region), or rank numbers."""
    primary_seed = results["config"]["training"]["seed"]
    primary = [r for r in results["ranks"] if r["status"] == "done" and r["seed"] == primary_seed]
    if not which or which == ["all"]:
        return primary
    chosen = set()
    ranks = [r["rank"] for r in primary]
    for item in which:
        if item == "knee":
            if report["knee"]["linear"] is None:
                raise ValueError("push_ranks 'knee': the report has no knee (fewer than 3 ranks, or a flat curve).")
            chosen.add(min(ranks, key=lambda rank: abs(rank - report["knee"]["linear"])))
        elif item == "region":
            low, high = report["region"]["r_low"], report["region"]["r_high"]
            if low is None:
                raise ValueError("push_ranks 'region': the curve never reaches the lower threshold.")
            chosen.update(r for r in ranks if low <= r <= (high if high is not None else max(ranks)))
        elif str(item).isdigit() and int(item) in ranks:
            chosen.add(int(item))
        else:
            raise ValueError(f"push_ranks entry {item!r} is not 'all', 'knee', 'region' or a finished rank ({ranks}).")
    return [r for r in primary if r["rank"] in chosen]


def _role(rank: int, report: dict, ranks: list[int]) -> str | None:
    roles = []
    knee = report["knee"]["linear"]
    if knee is not None and rank == min(ranks, key=lambda r: abs(r - knee)):
        roles.append("the measured rank nearest the knee")
    low, high = report["region"]["r_low"], report["region"]["r_high"]
    if low is not None and low <= rank <= (high if high is not None else max(ranks)):
        roles.append("inside the effective rank region")
    return " and ".join(roles) or None


def _card_data(results: dict, name: str, accuracy: float | None, is_model: bool = True) -> ModelCardData:
    dataset = results["dataset"]["name"]
    eval_results = None
    if accuracy is not None:
        eval_results = [
            EvalResult(
                task_type="image-classification",
                dataset_type=dataset,
                dataset_name=dataset,
                dataset_split="test",
                metric_type="accuracy",
                metric_value=round(accuracy, 4),
            )
        ]
    return ModelCardData(
        library_name="transformers" if is_model else None,
        pipeline_tag="image-classification" if is_model else None,
        license="apache-2.0",
        base_model=_hub_id(results["teacher"]["source"]),
        datasets=[dataset] if _hub_id(dataset) else None,
        tags=list(TAGS),
        model_name=name,
        eval_results=eval_results,
    )


def student_card(results: dict, report: dict, record: dict, repo_id: str | None = None) -> ModelCard:
    teacher = results["teacher"]
    row = next(r for r in report["rows"] if r["rank"] == record["rank"])
    ranks = [r["rank"] for r in report["rows"]]
    name = repo_id.split("/")[-1] if repo_id else f"{record['model_dir']}"
    environment = results["config"].get("environment", {})
    return ModelCard.from_template(
        _card_data(results, name, record["accuracy"]),
        template_path=_template("student.md"),
        model_name=name,
        repo_id=repo_id or f"path/to/{record['model_dir']}",
        rank=record["rank"],
        teacher_name=teacher["source"],
        distillation_mode=results["config"]["training"]["distillation_mode"],
        parameters=f"{record['parameters']:,}",
        teacher_parameters=f"{teacher['parameters']:,}",
        compression=f"{record['compression']:.2f}x",
        dataset_name=results["dataset"]["name"],
        num_test=results["dataset"]["num_test"],
        accuracy=f"{record['accuracy']:.4f}",
        accuracy_interval=_fmt_interval(row["accuracy_interval"], 4),
        teacher_accuracy=f"{teacher['accuracy']:.4f}",
        normalized_accuracy=f"{record['normalized_accuracy']:.1%}",
        sweep_ranks=", ".join(map(str, ranks)),
        low=f"{report['thresholds']['low']:.0%}",
        high=f"{report['thresholds']['high']:.0%}",
        region=f"[{_fmt(report['region']['r_low'])}, {_fmt(report['region']['r_high'])}]",
        knee=_fmt(report["knee"]["linear"], missing="none"),
        knee_log=_fmt(report["knee"]["log_rank"], missing="none"),
        role=_role(record["rank"], report, ranks),
        command=results.get("command") or "(not recorded)",
        seed=record["seed"],
        steps=record["steps"],
        num_processes=environment.get("num_processes", 1),
        num_seeds=len({r["seed"] for r in results["ranks"]}),
        above_break_even=record["compression"] <= 1,
        bridge_note=BRIDGE_NOTES.get((record.get("config") or {}).get("bridge", "none")),
    )


def sweep_card(
    results: dict, report: dict, repo_ids: dict[int, str] | None = None, repo_id: str | None = None
) -> ModelCard:
    repo_ids = repo_ids or {}
    students = [
        {
            "rank": row["rank"],
            "repo_id": repo_ids.get(row["rank"]),
            "model_dir": row["model_dir"],
            "accuracy": f"{row['accuracy']:.4f}",
        }
        for row in report["rows"]
    ]
    body = render_markdown(report).split("\n", 1)[1]  # the report without its title
    return ModelCard.from_template(
        _card_data(results, repo_id.split("/")[-1] if repo_id else "effective-rank-report", None, is_model=False),
        template_path=_template("sweep.md"),
        teacher_name=results["teacher"]["source"],
        dataset_name=results["dataset"]["name"],
        report=body,
        students=students,
        command=results.get("command") or "(not recorded)",
    )


def write_cards(
    output_dir: str | os.PathLike,
    report: dict,
    repo_ids: dict[int, str] | None = None,
    sweep_repo_id: str | None = None,
) -> None:
    """README.md (card) and knee.png in every student directory; the sweep's card as output_dir/README.md."""
    output_dir = Path(output_dir)
    results = load_results(output_dir / "results.json")
    repo_ids = repo_ids or {}
    for record in results["ranks"]:
        if record["status"] != "done" or not (output_dir / record["model_dir"]).is_dir():
            continue
        folder = output_dir / record["model_dir"]
        student_card(results, report, record, repo_ids.get(record["rank"])).save(folder / "README.md")
        shutil.copyfile(output_dir / "knee.png", folder / "knee.png")
    sweep_card(results, report, repo_ids, sweep_repo_id).save(output_dir / "README.md")

"""Model cards of a sweep's students and of the sweep itself, rendered once from the in-memory results and report
with huggingface_hub's `ModelCard.from_template` (Jinja templates in `model_cards/`)."""

import math
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..factorization import INIT_REGISTRY
from ..report import (
    Report,
    fmt_interval,
    knee_text,
    latency_conditions,
    latency_speedup,
    region_text,
    teacher_milliseconds,
)
from ..results import BudgetStudentResult, StudentResult, SweepResults


__all__ = [
    "BUDGETS",
    "TAGS",
    "SweepCards",
    "budget_card",
    "card_tags",
    "render_cards",
    "select_budget_students",
    "select_students",
    "student_card",
    "sweep_card",
    "write_cards",
]

BUDGETS = "budgets"  # the --push_ranks entry that chooses the budget students (`all` includes them too)

BRIDGE_NOTES = {
    "lift": "Lift variant: a linear projector after the last block (initialised to the identity) is kept at "
    "inference, and the student was distilled with MSE on its final tokens plus the logit term.",
    "widelast": "WideLast variant: the last block is not factorized (it stays at the teacher's full capacity), and "
    "the student was distilled with MSE on its final tokens plus the logit term.",
}
NOT_MEASURED = "not measured"
KNEE_FIGURE, BUDGET_FIGURE = "knee.png", "budget_ranks.png"  # written by report.write_report
TAGS = ["hf_lowrank", "low-rank", "knowledge-distillation"]  # every card's
FAMILY_TAGS = {"vit": ("vision-transformer",)}  # a teacher family's own Hub tags, beside its model_type
# The encoder linears a family's blocks hold, as a card names them (others: "every linear layer inside the blocks").
FAMILY_LAYERS = {"vit": "query, key, value, attention output, MLP fc1 and fc2 of each block"}


def card_tags(results: SweepResults) -> list[str]:
    """The Hub tags of a sweep's cards: `TAGS`, the teacher's task and model_type (and its family's `FAMILY_TAGS`),
    and the student class: `lowrank` (every family), or `bridged-vit` for Lift / WideLast students."""
    teacher = results.teacher
    student = "lowrank" if results.student_bridge == "none" else "bridged-vit"
    return [*TAGS, teacher.task, teacher.model_type, *FAMILY_TAGS.get(teacher.model_type, ()), student]


def _template(name: str) -> str:
    return str(resources.files("hf_lowrank.model_cards") / name)


def _hub_id(source: str | None) -> str | None:
    """`source` if it names a Hub repository (not a local path or the embedded teacher)."""
    if not source or os.path.exists(source) or source.startswith("embedded") or source.count("/") != 1:
        return None
    return source


def _nearest_knee_rank(report: Report, ranks: list[int]) -> int | None:
    knee = report.knee["linear"] if report.estimated else None
    return None if knee is None or not ranks else min(ranks, key=lambda rank: abs(rank - knee))


def _in_region(report: Report, rank: int, ranks: list[int]) -> bool:
    low, high = report.region["r_low"], report.region["r_high"]
    return report.estimated and low is not None and low <= rank <= (high if high is not None else max(ranks))


def select_students(results: SweepResults, report: Report, which: list[str] | None) -> list[StudentResult]:
    """Finished primary-seed students chosen by `which`: None or ["all"], "knee" (the measured rank nearest the
    headline knee), "region" (the measured ranks inside the effective rank region), or rank numbers."""
    primary = results.done_students(results.primary_seed)
    if not which or which == ["all"]:
        return primary
    ranks, chosen = [r.rank for r in primary], set()
    for item in which:
        if item == BUDGETS:
            continue  # chosen by select_budget_students
        if item == "knee":
            nearest = _nearest_knee_rank(report, ranks)
            if nearest is None:
                raise ValueError("push_ranks 'knee': the report has no knee (fewer than 3 ranks, or no knee).")
            chosen.add(nearest)
        elif item == "region":
            inside = [rank for rank in ranks if _in_region(report, rank, ranks)]
            if not inside:
                raise ValueError("push_ranks 'region': no measured rank lies in the effective rank region.")
            chosen.update(inside)
        elif str(item).isdigit() and int(item) in ranks:
            chosen.add(int(item))
        else:
            raise ValueError(
                f"push_ranks entry {item!r} is not 'all', 'knee', 'region', '{BUDGETS}' or a finished rank ({ranks})."
            )
    return [r for r in primary if r.rank in chosen]


def select_budget_students(results: SweepResults, which: list[str] | None) -> list[BudgetStudentResult]:
    """Finished primary-seed budget students (`--param_budget`) when `which` is None, ["all"] or names
    `BUDGETS`; none otherwise."""
    if which and which != ["all"] and BUDGETS not in which:
        return []
    return [
        record for record in results.budget_students if record.seed == results.primary_seed and record.status == "done"
    ]


def _role(rank: int, report: Report, ranks: list[int]) -> str | None:
    roles = []
    if rank == _nearest_knee_rank(report, ranks):
        roles.append("the measured rank nearest the knee")
    if _in_region(report, rank, ranks):
        roles.append("inside the effective rank region")
    return " and ".join(roles) or None


def _card_data(results: SweepResults, name: str, accuracy: float | None, is_model: bool = True) -> ModelCardData:
    dataset = results.dataset.name
    eval_results = None
    if accuracy is not None:
        eval_results = [
            EvalResult(
                task_type=results.teacher.task,
                dataset_type=dataset,
                dataset_name=dataset,
                dataset_split="test",
                metric_type="accuracy",
                metric_value=round(accuracy, 4),
            )
        ]
    return ModelCardData(
        library_name="transformers" if is_model else None,
        pipeline_tag=results.teacher.task if is_model else None,
        license="apache-2.0",
        base_model=_hub_id(results.teacher.source),
        datasets=[dataset] if _hub_id(dataset) else None,
        tags=card_tags(results),
        model_name=name,
        eval_results=eval_results,
    )


def _measured(value) -> str | None:
    """`value` to 4 decimals when it was measured (a finite number); None when missing or NaN (not measured)."""
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        return None
    return f"{value:.4f}"


def _robustness(record: StudentResult, results: SweepResults) -> dict:
    """Card fields for calibration and noise robustness, each where the sweep measured it (a finite value).

    The card's table shows an ECE row when `ece` is set, and the card says "calibration and robustness were not
    measured" when it is not: so with noise accuracies but no ECE, `ece` reads "not measured" (the row says so)
    rather than claiming robustness was not measured either."""
    teacher = results.teacher
    noise = [
        (sigma, _measured(value), _measured(teacher.noise_accuracy.get(sigma)))
        for sigma, value in record.noise_accuracy.items()
        if _measured(value) is not None and _measured(teacher.noise_accuracy.get(sigma)) is not None
    ]
    ece = _measured(record.ece)
    if ece is None and noise:
        ece = NOT_MEASURED
    return {
        "ece": ece,
        "teacher_ece": _measured(teacher.ece) or NOT_MEASURED,
        "noise": noise,
    }


def _task_fields(results: SweepResults) -> dict:
    """The student card's family- and task-dependent words: which layers were factorized, the pipeline task, and
    the classes that load the student and its processor."""
    teacher = results.teacher
    text = teacher.task == "text-classification"
    layers = FAMILY_LAYERS.get(teacher.model_type, f"every linear layer inside the {teacher.model_type} blocks")
    return {
        "layers_note": layers,
        "task": teacher.task,
        "auto_class": "AutoModelForSequenceClassification" if text else "AutoModelForImageClassification",
        "processor_class": "AutoTokenizer" if text else "AutoImageProcessor",
    }


def _init_note(init: str) -> str:
    """How a student's factors started, as the card's sentence says it (the init registry's `card_note`)."""
    return INIT_REGISTRY[init].card_note if init in INIT_REGISTRY else init


def _curve_note(record: StudentResult) -> str | None:
    """How a student cut from a nested student was made (None for a student trained alone at its rank)."""
    if record.config.curve != "nested":
        return None
    tuned = f", then fine-tuned alone for {record.config.finetune_steps} steps" if record.config.finetune_steps else ""
    return (
        f"It was not trained alone: it is the first {record.rank} directions of every factorized layer of one "
        f"rank-{record.config.nested_rank} student distilled through truncated views at every rank of the sweep "
        f"(nested-rank training){tuned}."
    )


def student_card(
    results: SweepResults, report: Report, record: StudentResult, repo_id: str | None = None
) -> ModelCard:
    row = next(r for r in report.rows if r["rank"] == record.rank)
    name = repo_id.split("/")[-1] if repo_id else record.model_dir
    return ModelCard.from_template(
        _card_data(results, name, record.accuracy),
        template_path=_template("student.md"),
        **_common_fields(results, record, name, repo_id),
        rank=record.rank,
        init_note=_init_note(record.config.init),
        curve_note=_curve_note(record),
        untrained=record.config.untrained,
        accuracy_interval=fmt_interval(row["accuracy_interval"], 4),
        sweep_ranks=", ".join(map(str, report.ranks)),
        low=f"{report.thresholds['low']:.0%}",
        high=f"{report.thresholds['high']:.0%}",
        region=region_text(report),
        knee=knee_text(report),
        knee_log=knee_text(report, "log_rank"),
        role=_role(record.rank, report, report.ranks),
        above_break_even=record.compression <= 1,
        bridge_note=BRIDGE_NOTES.get(record.config.bridge),
        **_robustness(record, results),
    )


def _common_fields(results: SweepResults, record, name: str, repo_id: str | None) -> dict:
    """The fields every student card shows (a rank or a budget student `record`): names, the teacher, the loss,
    sizes and accuracies, how it was made, and the family's task words."""
    teacher, dataset = results.teacher, results.dataset
    return {
        "model_name": name,
        "repo_id": repo_id or f"path/to/{record.model_dir}",
        "teacher_name": teacher.source,
        "distillation": results.distillation,
        "parameters": f"{record.parameters:,}",
        "teacher_parameters": f"{teacher.parameters:,}",
        "compression": f"{record.compression:.2f}x",
        "dataset_name": dataset.name,
        "num_test": dataset.num_test,
        "accuracy": f"{record.accuracy:.4f}",
        "teacher_accuracy": f"{teacher.accuracy:.4f}",
        "normalized_accuracy": f"{record.normalized_accuracy:.1%}",
        "command": results.command or "(not recorded)",
        "seed": record.seed,
        "steps": record.steps,
        "num_processes": results.num_processes,
        "num_seeds": len(results.seeds),
        **_latency_fields(record.latency, teacher.latency),
        "for_inference": getattr(getattr(record, "config", None), "bridge", "none") == "none",
        **_task_fields(results),
    }


def _latency_fields(latency: dict | None, teacher_latency: dict | None) -> dict:
    """The card's latency rows (batch size, this student's ms, the teacher's ms, speedup) and their conditions;
    none when either was not measured (`--measure_latency false`)."""
    if not latency or not teacher_latency:
        return {"latency_rows": [], "latency_note": None}
    rows = [
        (batch, f"{ms:.2f} ms", f"{teacher_milliseconds(latency, teacher_latency, batch):.2f} ms", f"{speedup:.2f}x")
        for batch, ms in latency["milliseconds"].items()
        if (speedup := latency_speedup(latency, teacher_latency, batch)) is not None
    ]
    beside = ", timed beside it (passes interleaved)" if latency.get("reference_milliseconds") else ""
    note = (
        f"Latency: {latency_conditions(latency)}; this student in its {latency['layout']}, the teacher dense{beside}."
    )
    return {"latency_rows": rows, "latency_note": note}


def _rank_range(layer_ranks: dict[str, int | None]) -> str:
    ranks = sorted(rank for rank in layer_ranks.values() if rank is not None)
    return f"{ranks[0]} to {ranks[-1]}, median {ranks[len(ranks) // 2]}" if ranks else "none"


def budget_card(
    results: SweepResults, report: Report, record: BudgetStudentResult, repo_id: str | None = None
) -> ModelCard:
    """The card of a `--param_budget` student: its per-layer ranks in brief, beside the uniform-rank student of the
    same budget and seed (and, for the primary seed, the report's paired interval of their difference)."""
    name = repo_id.split("/")[-1] if repo_id else record.model_dir
    partner = next((r for r in results.done_students(record.seed) if r.rank == record.uniform_rank), None)
    row = next(
        (r for r in report.budget_students if r["budget"] == record.budget and record.seed == results.primary_seed),
        None,
    )
    dense = sum(rank is None for rank in record.layer_ranks.values())
    return ModelCard.from_template(
        _card_data(results, name, record.accuracy),
        template_path=_template("budget_student.md"),
        **_common_fields(results, record, name, repo_id),
        init_note=_init_note(results.init),
        budget=f"{record.budget:g}",
        budget_parameters=f"{record.budget_parameters:,}",
        factorized_layers=len(record.layer_ranks) - dense,
        dense_layers=dense,
        rank_range=_rank_range(record.layer_ranks),
        linear_parameters=f"{record.linear_parameters:,}",
        uniform_rank=record.uniform_rank,
        uniform_linear_parameters=f"{record.uniform_linear_parameters:,}",
        uniform_accuracy=f"{partner.accuracy:.4f}" if partner else "not trained",
        uniform_normalized_accuracy=f"{partner.normalized_accuracy:.1%}" if partner else "",
        difference=f"{row['difference']:+.4f}" if row and row["difference"] is not None else None,
        difference_interval=fmt_interval(row["difference_interval"], 4) if row else "",
    )


def sweep_card(
    results: SweepResults, report: Report, repo_ids: dict[int, str] | None = None, repo_id: str | None = None
) -> ModelCard:
    repo_ids = repo_ids or {}
    students = [
        {
            "rank": row["rank"],
            "repo_id": repo_ids.get(row["rank"]),
            "model_dir": row["model_dir"],
            "accuracy": f"{row['accuracy']:.4f}",
        }
        for row in report.rows
    ]
    body = report.markdown().split("\n", 1)[1]  # the report without its title
    return ModelCard.from_template(
        _card_data(results, repo_id.split("/")[-1] if repo_id else "effective-rank-report", None, is_model=False),
        template_path=_template("sweep.md"),
        teacher_name=results.teacher.source,
        dataset_name=results.dataset.name,
        report=body,
        students=students,
        command=results.command or "(not recorded)",
    )


@dataclass
class SweepCards:
    """The cards of a sweep: one per finished student, rank and budget students alike (model_dir -> card), and the
    sweep's."""

    students: dict[str, ModelCard]
    sweep: ModelCard
    figures: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model_dir -> the sweep's figures it shows


def render_cards(
    results: SweepResults,
    report: Report,
    repo_ids: dict[int, str] | None = None,
    sweep_repo_id: str | None = None,
    budget_repo_ids: dict[float, str] | None = None,
) -> SweepCards:
    """Every card of the sweep, naming the Hub repositories in `repo_ids` (rank -> id of the primary seed's
    student) and `budget_repo_ids` (budget -> id of the primary seed's budget student) where given."""
    repo_ids, budget_repo_ids = repo_ids or {}, budget_repo_ids or {}
    primary = results.primary_seed
    students = {
        record.model_dir: student_card(
            results, report, record, repo_ids.get(record.rank) if record.seed == primary else None
        )
        for record in results.done_students()
    }
    figures = {model_dir: (KNEE_FIGURE,) for model_dir in students}
    for record in results.budget_students:
        if record.status == "done" and record.model_dir:
            repo_id = budget_repo_ids.get(record.budget) if record.seed == primary else None
            students[record.model_dir] = budget_card(results, report, record, repo_id)
            figures[record.model_dir] = (BUDGET_FIGURE,)
    return SweepCards(students, sweep_card(results, report, repo_ids, sweep_repo_id), figures)


def write_cards(cards: SweepCards, output_dir: str | os.PathLike) -> None:
    """README.md (card) and the figures it shows (knee.png; budget_ranks.png for a budget student) in every student
    directory; the sweep's card as output_dir/README.md."""
    output_dir = Path(output_dir)
    for model_dir, card in cards.students.items():
        folder = output_dir / model_dir
        if folder.is_dir():
            card.save(folder / "README.md")
            for figure in cards.figures.get(model_dir, (KNEE_FIGURE,)):
                if (output_dir / figure).is_file():
                    shutil.copyfile(output_dir / figure, folder / figure)
    cards.sweep.save(output_dir / "README.md")

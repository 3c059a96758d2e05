"""`--param_budget`: per budget, a student whose per-layer ranks are allocated greedily within the budget from the
teacher's whitened spectra (`factorization.allocate_ranks`), distilled as the rank students are, beside the
uniform-rank student of the same budget (the largest single rank within it, which the sweep adds to its ranks)."""

from dataclasses import dataclass

from ..factorization import LayerSpectrum, allocate_ranks, budget_parameters, plan_parameters, uniform_rank_within
from ..models import count_parameters
from ..results import BudgetStudentResult
from .arguments import SweepError
from .context import SweepContext
from .measurements import latency
from .students import context_student, distil, seeded


__all__ = ["BudgetPlan", "budget_count", "budget_dir", "budget_plans", "run_budget_stage"]


@dataclass
class BudgetPlan:
    """One budget: as given, as a parameter count, the allocated per-layer ranks, and the uniform rank within it."""

    budget: float
    budget_parameters: int
    layer_ranks: dict[str, int | None]  # None: kept dense (at or above its break-even rank)
    linear_parameters: int
    uniform_rank: int
    uniform_linear_parameters: int


def budget_count(budget: float, spectra: dict[str, LayerSpectrum]) -> int:
    try:
        count = budget_parameters(int(budget) if budget > 1 else budget, spectra)
    except ValueError as error:
        raise SweepError(
            f"--{str(error).rstrip('.')} (over the {len(spectra)} factorized encoder linears)."
        ) from error
    dense = plan_parameters(spectra, None)
    if count >= dense:  # every layer would reach its break-even rank and stay dense: the student is the teacher
        raise SweepError(
            f"--param_budget {budget!r} ({count:,} parameters) is the dense layers' whole {dense:,}: no layer would "
            f"be factorized (each would reach its break-even rank and stay dense). Give a smaller budget: a fraction "
            f"below 1 or a count below {dense:,}."
        )
    return count


def budget_plans(ctx: SweepContext) -> list[BudgetPlan]:
    """The plan of every `--param_budget` (empty without one); SweepError naming the valid range for a budget below
    every layer at rank 1 or above the dense layers."""
    plans = []
    if not ctx.sweep.param_budget:
        return plans
    spectra = ctx.factorization.spectra()
    for budget in ctx.sweep.param_budget:
        count = budget_count(budget, spectra)
        ranks = allocate_ranks(spectra, count)
        uniform = uniform_rank_within(spectra, count)
        plans.append(
            BudgetPlan(
                budget=budget,
                budget_parameters=count,
                layer_ranks=ranks,
                linear_parameters=plan_parameters(spectra, ranks),
                uniform_rank=uniform,
                uniform_linear_parameters=plan_parameters(spectra, uniform),
            )
        )
    return plans


def budget_dir(budget: float, seed: int, primary_seed: int) -> str:
    """`budget-0.25` (a fraction, every digit kept) or `budget-120000` (a count), with `-seed-N` for the
    non-primary seeds."""
    name = f"budget-{float(budget)!r}" if budget <= 1 else f"budget-{int(budget)}"
    return name if seed == primary_seed else f"{name}-seed-{seed}"


def run_budget_stage(ctx: SweepContext, plans: list[BudgetPlan], seed: int) -> None:
    """Distil, evaluate, save and record the budget students of `seed` not recorded yet, in one lock-step group (a
    student recorded as failed is not retried, as a failed rank student is not: `SweepStore.finished_budgets`)."""
    finished = ctx.store.finished_budgets()
    pending = [plan for plan in plans if (plan.budget, seed) not in finished]
    if not pending:
        return
    init = ctx.sweep.init
    decompositions = ctx.factorization.decompositions(init)
    students = {}
    for plan in pending:
        with seeded(seed, "budget", plan.budget_parameters):
            students[plan.budget] = context_student(
                ctx, ctx.factorization.rank_mapping(plan.layer_ranks), init, decompositions
            )
    at_init = ctx.evaluate(students, "budget students at init", noise=False)
    keys = {plan.budget: budget_dir(plan.budget, seed, seed) for plan in pending}
    outcomes = distil(
        ctx,
        {keys[budget]: student for budget, student in students.items()},
        seed,
        ctx.store.checkpoint({"stage": "budget", "seed": seed}),
        f"distilling budget students {[plan.budget for plan in pending]}, seed {seed}",
    )
    done = {budget: s for budget, s in students.items() if outcomes[keys[budget]].status == "done"}
    evaluations = ctx.evaluate(done, "evaluating budget students", noise=False)
    teacher = ctx.results.teacher
    for plan in pending:
        student, outcome = students[plan.budget], outcomes[keys[plan.budget]]
        parameters = count_parameters(ctx.accelerator.unwrap_model(student))
        record = BudgetStudentResult(
            budget=plan.budget,
            budget_parameters=plan.budget_parameters,
            status=outcome.status,
            seed=seed,
            parameters=parameters,
            linear_parameters=plan.linear_parameters,
            uniform_rank=plan.uniform_rank,
            uniform_linear_parameters=plan.uniform_linear_parameters,
            layer_ranks=plan.layer_ranks,
            compression=teacher.parameters / parameters,
            error=outcome.error,
            steps=outcome.steps,
            train_seconds=outcome.train_seconds,
            init_accuracy=at_init[plan.budget].accuracy,
        )
        if plan.budget in evaluations:
            evaluation = evaluations[plan.budget]
            record.model_dir = ctx.store.save_model(
                budget_dir(plan.budget, seed, ctx.results.primary_seed), student, ctx.processor
            )
            record.accuracy = evaluation.accuracy
            record.normalized_accuracy = evaluation.accuracy / teacher.accuracy
            record.correct = evaluation.correct.astype(int).tolist()
            record.latency = latency(ctx, student)
        ctx.results.record_budget_student(record)
        ctx.store.write()
    ctx.store.remove_checkpoint()

"""Publishing a sweep on the Hub: the chosen students with their cards, and the report in a repository of its own.

Nothing local is changed by a push; `scripts/push.py OUTPUT_DIR` publishes a finished sweep later.
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import get_session, hf_raise_for_status

from ..report import REPORT_FILES, Report, build_report
from ..results import BudgetStudentResult, StudentResult, SweepResults
from .cards import SweepCards, render_cards, select_budget_students, select_students


__all__ = [
    "HubPushError",
    "HubTarget",
    "budget_repo_id",
    "connect_hub",
    "pushed_line",
    "pushed_pairs",
    "push_sweep",
    "student_repo_id",
    "upload_sweep",
]

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
SWEEP_FILES = ("results.json", *REPORT_FILES)  # the sweep repository's files, beside its README.md


class HubPushError(RuntimeError):
    """An upload that could not be done; the local results are untouched."""


def student_repo_id(prefix: str, rank: int) -> str:
    return f"{prefix}-rank-{rank:03d}"


def budget_repo_id(prefix: str, record: BudgetStudentResult) -> str:
    """`{prefix}-budget-0.25`: the budget student's directory name (primary seed) after the prefix."""
    return f"{prefix}-{record.model_dir}"


def pushed_pairs(repo_ids: dict[int | str, str]) -> list[tuple[str, str]]:
    """`(what, repository)` of every pushed student: ``("rank 2", ...)`` by rank ascending, then the budget
    students by directory name (``("budget-0.3", ...)``)."""
    ranks = sorted(key for key in repo_ids if isinstance(key, int))
    budgets = [key for key in repo_ids if not isinstance(key, int)]
    return [(f"rank {rank}", repo_ids[rank]) for rank in ranks] + [(key, repo_ids[key]) for key in budgets]


def pushed_line(repo_ids: dict[int | str, str]) -> str:
    """`rank 2 -> me/x-rank-002, budget-0.3 -> me/x-budget-0.3` (see `pushed_pairs`)."""
    return ", ".join(f"{what} -> {repo}" for what, repo in pushed_pairs(repo_ids))


def _is_network_error(error: Exception) -> bool:
    """A connection, timeout or transport failure, from the OS or from huggingface_hub's HTTP client."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return isinstance(error, (ConnectionError, TimeoutError)) or bool(
        names & {"TransportError", "NetworkError", "TimeoutException", "ConnectError"}
    )


def _with_retries(what: str, call: Callable, retries: int, backoff: float, output_dir: Path):
    """Run `call`, retrying transient failures (network errors, 408/429/5xx) with exponential backoff."""
    later = (
        f"The local results in {output_dir} are untouched; publish them later with: python scripts/push.py "
        f"{output_dir} --hub_model_id PREFIX"
    )
    for attempt in range(retries + 1):
        try:
            return call()
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status in (401, 403):
                raise HubPushError(
                    f"{what}: the Hub refused the token (HTTP {status}); check that it may write "
                    f"to this namespace. {later}"
                ) from None
            if status not in RETRYABLE_STATUS or attempt == retries:
                raise HubPushError(
                    f"{what} failed (HTTP {status}) after {attempt + 1} attempt(s): "
                    f"{str(error).splitlines()[0]}. {later}"
                ) from None
        except OfflineModeIsEnabled:
            raise HubPushError(f"{what}: HF_HUB_OFFLINE is set, so nothing can be uploaded. {later}") from None
        except Exception as error:
            if not _is_network_error(error):
                raise
            if attempt == retries:
                raise HubPushError(
                    f"{what} failed: cannot reach the Hub ({type(error).__name__}) after "
                    f"{attempt + 1} attempt(s). {later}"
                ) from None
        time.sleep(backoff * 2**attempt)


def _validate_card(api: HfApi, card, what: str) -> None:
    """Ask the Hub whether the card's YAML metadata is valid (what `ModelCard.validate` does, at `api.endpoint`)."""
    response = get_session().post(
        f"{api.endpoint}/api/validate-yaml",
        json={"repoType": "model", "content": str(card)},
        headers={"Accept": "text/plain"},
    )
    if response.status_code == 400:
        raise HubPushError(f"the Hub rejected the metadata of {what}: {response.text}")
    hf_raise_for_status(response)


def _folder_operations(folder: Path, readme: str) -> list[CommitOperationAdd]:
    """Every file of `folder` (recursively) but its README.md, plus `readme` as README.md."""
    operations = [
        CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != "README.md"
    ]
    return operations + [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode())]


@dataclass
class HubTarget:
    """Where a sweep goes: an authenticated client and the repository prefix (with its namespace)."""

    api: HfApi
    prefix: str
    output_dir: Path
    retries: int = 4
    backoff: float = 2.0
    private: bool | None = None

    def call(self, what: str, call: Callable):
        return _with_retries(what, call, self.retries, self.backoff, self.output_dir)

    def repo_ids(self, students: list[StudentResult]) -> dict[int, str]:
        return {record.rank: student_repo_id(self.prefix, record.rank) for record in students}

    def budget_repo_ids(self, budget_students: list[BudgetStudentResult]) -> dict[float, str]:
        return {record.budget: budget_repo_id(self.prefix, record) for record in budget_students}

    def pushed(
        self, students: list[StudentResult], budget_students: list[BudgetStudentResult]
    ) -> dict[int | str, str]:
        """Rank (an int) or budget student directory (a str) -> repository id, as `push_sweep` returns it."""
        budgets = {record.model_dir: budget_repo_id(self.prefix, record) for record in budget_students}
        return {**self.repo_ids(students), **budgets}


def connect_hub(
    output_dir: str | os.PathLike,
    hub_model_id: str,
    token: str | None = None,
    private: bool | None = None,
    endpoint: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
) -> HubTarget:
    """Check the token (with retries) and resolve `hub_model_id` to `namespace/name`. The token comes from `token`
    or huggingface_hub's usual sources (HF_TOKEN, the saved login); it is never printed or logged."""
    output_dir = Path(output_dir)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        user = _with_retries("checking the token", api.whoami, retries, backoff, output_dir)
    except LocalTokenNotFoundError:
        raise HubPushError(
            "no Hugging Face token: log in with `hf auth login`, set HF_TOKEN, or pass --hub_token. "
            f"The local results in {output_dir} are untouched."
        ) from None
    prefix = hub_model_id if "/" in hub_model_id else f"{user['name']}/{hub_model_id}"
    return HubTarget(api, prefix, output_dir, retries, backoff, private)


def _commit(target: HubTarget, repo_id: str, operations: list[CommitOperationAdd], message: str) -> None:
    target.call(f"creating {repo_id}", lambda: target.api.create_repo(repo_id, private=target.private, exist_ok=True))
    target.call(f"uploading {repo_id}", lambda: target.api.create_commit(repo_id, operations, commit_message=message))


def upload_sweep(
    target: HubTarget,
    students: list[StudentResult],
    cards: SweepCards,
    budget_students: list[BudgetStudentResult] = (),
) -> None:
    """Validate every card's metadata first, then upload each student's folder (rank students, then budget
    students) with its card and the sweep's report files with the sweep card: one commit per repository."""
    repo_ids, budget_ids = target.repo_ids(students), target.budget_repo_ids(budget_students)
    uploads = [(record.model_dir, repo_ids[record.rank], f"rank-{record.rank} student") for record in students]
    uploads += [(b.model_dir, budget_ids[b.budget], f"budget {b.budget:g} student") for b in budget_students]
    for model_dir, repo_id, _ in uploads:
        card = cards.students[model_dir]
        target.call(f"validating the card of {repo_id}", lambda: _validate_card(target.api, card, repo_id))
    target.call(
        f"validating the card of {target.prefix}", lambda: _validate_card(target.api, cards.sweep, target.prefix)
    )
    for model_dir, repo_id, what in uploads:
        operations = _folder_operations(target.output_dir / model_dir, str(cards.students[model_dir]))
        _commit(target, repo_id, operations, f"hf_lowrank: {what}")
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(target.output_dir / name))
        for name in SWEEP_FILES
        if (target.output_dir / name).is_file()
    ]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(cards.sweep).encode()))
    _commit(target, target.prefix, operations, "hf_lowrank: effective-rank report")


def push_sweep(
    output_dir: str | os.PathLike,
    hub_model_id: str,
    push_ranks: list[str] | None = None,
    token: str | None = None,
    private: bool | None = None,
    endpoint: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
) -> dict[int | str, str]:
    """Publish the finished sweep in `output_dir` (what `scripts/push.py` runs): the students chosen by
    `push_ranks` (see `select_students`, `select_budget_students`) to `{hub_model_id}-rank-XXX` and
    `{hub_model_id}-budget-B`, the report to `hub_model_id`. Returns rank (an int) or budget student directory (a
    str, e.g. ``"budget-0.3"``) -> repository id.

    Transient failures (network, HTTP 408/429/5xx) are retried `retries` times with exponential backoff from
    `backoff` seconds; then a `HubPushError` says what failed. Nothing in `output_dir` is modified: the cards that
    name the repositories are rendered in memory.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}.")
    results = SweepResults.load(output_dir)
    report_path = Path(output_dir) / "report.json"
    report = Report.load(report_path) if report_path.is_file() else build_report(results)
    chosen = select_students(results, report, push_ranks)
    budgets = select_budget_students(results, push_ranks)
    target = connect_hub(output_dir, hub_model_id, token, private, endpoint, retries, backoff)
    budget_ids = target.budget_repo_ids(budgets)
    cards = render_cards(results, report, target.repo_ids(chosen), target.prefix, budget_ids)
    upload_sweep(target, chosen, cards, budgets)
    return target.pushed(chosen, budgets)

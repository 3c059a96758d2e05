"""Publishing a sweep on the Hub: the chosen students with their cards, and the report in a repository of its own.

Nothing local is changed by a failed upload; `scripts/push.py OUTPUT_DIR` publishes a finished sweep later.
"""

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import get_session, hf_raise_for_status

from .cards import select_students, student_card, sweep_card
from .report import write_report
from .results import load_results


__all__ = ["HubPushError", "push_sweep", "student_repo_id"]

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
SWEEP_FILES = [
    "README.md",
    "report.md",
    "report.json",
    "results.json",
    "knee.png",
    "params_vs_accuracy.png",
    "representations.png",
]


class HubPushError(RuntimeError):
    """An upload that could not be done; the local results are untouched."""


def student_repo_id(prefix: str, rank: int) -> str:
    return f"{prefix}-rank-{rank:03d}"


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


def push_sweep(
    output_dir: str | os.PathLike,
    hub_model_id: str,
    push_ranks: list[str] | None = None,
    token: str | None = None,
    private: bool | None = None,
    endpoint: str | None = None,
    retries: int = 4,
    backoff: float = 2.0,
) -> dict[int, str]:
    """Push the chosen students of the sweep in `output_dir` to `{hub_model_id}-rank-XXX` and its report to
    `hub_model_id`, one commit per repository. Returns rank -> repository id.

    `push_ranks`: None or ["all"], "knee", "region", or rank numbers (see `select_students`). The token comes from
    `token` or huggingface_hub's usual sources (HF_TOKEN, the saved login); it is never printed or logged.
    Transient failures (network, HTTP 408/429/5xx) are retried `retries` times with exponential backoff from
    `backoff` seconds; then a `HubPushError` says what failed. Nothing in `output_dir` is modified: the cards that
    name the repositories are rendered in memory.
    """
    output_dir = Path(output_dir)
    results = load_results(output_dir / "results.json")
    report_path = output_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else write_report(output_dir)
    chosen = select_students(results, report, push_ranks)

    api = HfApi(endpoint=endpoint, token=token)
    try:
        user = _with_retries("checking the token", api.whoami, retries, backoff, output_dir)
    except LocalTokenNotFoundError:
        raise HubPushError(
            "no Hugging Face token: log in with `hf auth login`, set HF_TOKEN, or pass --hub_token. "
            f"The local results in {output_dir} are untouched."
        ) from None
    if "/" not in hub_model_id:
        hub_model_id = f"{user['name']}/{hub_model_id}"
    repo_ids = {record["rank"]: student_repo_id(hub_model_id, record["rank"]) for record in chosen}
    cards = {record["rank"]: student_card(results, report, record, repo_ids[record["rank"]]) for record in chosen}
    report_card = sweep_card(results, report, repo_ids, hub_model_id)
    for rank, card in cards.items():
        _with_retries(
            f"validating the card of {repo_ids[rank]}",
            lambda: _validate_card(api, card, repo_ids[rank]),
            retries,
            backoff,
            output_dir,
        )
    _with_retries(
        f"validating the card of {hub_model_id}",
        lambda: _validate_card(api, report_card, hub_model_id),
        retries,
        backoff,
        output_dir,
    )

    uploads = [
        (
            repo_ids[r["rank"]],
            output_dir / r["model_dir"],
            str(cards[r["rank"]]),
            f"hf_lowrank: rank-{r['rank']} student",
        )
        for r in chosen
    ]
    uploads.append((hub_model_id, None, str(report_card), "hf_lowrank: effective-rank report"))
    for repo_id, folder, readme, message in uploads:
        if folder is None:  # the sweep repository: the report files only
            operations = [
                CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(output_dir / name))
                for name in SWEEP_FILES
                if name != "README.md" and (output_dir / name).is_file()
            ]
            operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode()))
        else:
            operations = _folder_operations(folder, readme)
        _with_retries(
            f"creating {repo_id}",
            lambda: api.create_repo(repo_id, private=private, exist_ok=True),
            retries,
            backoff,
            output_dir,
        )
        _with_retries(
            f"uploading {repo_id}",
            lambda: api.create_commit(repo_id, operations, commit_message=message),
            retries,
            backoff,
            output_dir,
        )
    return repo_ids

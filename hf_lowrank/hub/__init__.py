"""Model cards and Hub publishing.

- `cards`: the cards of a sweep's students and of the sweep, rendered once from the results and the report.
- `push`: the Hub client (token check, retries) and the uploads, one commit per repository.
"""

from .cards import (
    BUDGETS,
    TAGS,
    SweepCards,
    budget_card,
    render_cards,
    select_budget_students,
    select_students,
    student_card,
    sweep_card,
    write_cards,
)
from .push import (
    HubPushError,
    HubTarget,
    budget_repo_id,
    connect_hub,
    push_sweep,
    pushed_line,
    pushed_pairs,
    student_repo_id,
    upload_sweep,
)


__all__ = [
    "BUDGETS",
    "budget_card",
    "budget_repo_id",
    "pushed_line",
    "pushed_pairs",
    "select_budget_students",
    "HubPushError",
    "HubTarget",
    "SweepCards",
    "TAGS",
    "connect_hub",
    "push_sweep",
    "render_cards",
    "select_students",
    "student_card",
    "student_repo_id",
    "sweep_card",
    "upload_sweep",
    "write_cards",
]

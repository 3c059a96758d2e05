"""Model cards and Hub publishing.

- `cards`: the cards of a sweep's students and of the sweep, rendered once from the results and the report.
- `push`: the Hub client (token check, retries) and the uploads, one commit per repository.
"""

from .cards import TAGS, SweepCards, render_cards, select_students, student_card, sweep_card, write_cards
from .push import HubPushError, HubTarget, connect_hub, push_sweep, student_repo_id, upload_sweep


__all__ = [
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

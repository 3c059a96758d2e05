"""The rank sweep, stage by stage.

- `arguments`: `SweepArguments` (CLI help in field metadata) and `SweepError`.
- `embedded`: the embedded digits teacher and the default ranks.
- `fingerprint`: what a resume must match.
- `store`: the sweep directory (results.json, model directories); `context`: `SweepContext`, what stages share.
- `teacher_stage`, `students`, `cnn_stage`: the stages; `measurements`: robustness and diagnostics of any model.
- `run`: `run_sweep`, the stages in order, then report -> cards -> Hub.
"""

from .arguments import FINETUNE_MODES, SweepArguments, SweepError
from .context import SweepContext
from .embedded import default_ranks, embedded_teacher
from .fingerprint import differences, fingerprint
from .run import run_sweep
from .store import RESULTS_FILE, TEACHER_DIR, SweepStore
from .students import build_student, student_dir


__all__ = [
    "FINETUNE_MODES",
    "RESULTS_FILE",
    "SweepArguments",
    "SweepContext",
    "SweepError",
    "SweepStore",
    "TEACHER_DIR",
    "build_student",
    "default_ranks",
    "differences",
    "embedded_teacher",
    "fingerprint",
    "run_sweep",
    "student_dir",
]

"""The rank sweep, stage by stage.

- `arguments`: `SweepArguments` (CLI help in field metadata) and `SweepError`.
- `embedded`: the embedded digits teachers (six families) and the default ranks.
- `families`: what the sweep knows of a teacher's family (modality, processor, block layout, student class).
- `fingerprint`: what a resume must match.
- `store`: the sweep directory (results.json, model directories); `context`: `SweepContext`, what stages share.
- `teacher_stage`, `students`, `cnn_stage`: the stages; `measurements`: robustness and diagnostics of any model.
- `run`: `run_sweep`, the stages in order, then report -> cards -> Hub.
"""

from .arguments import EMBEDDED_ARCHITECTURES, FINETUNE_MODES, SweepArguments, SweepError
from .context import SweepContext
from .embedded import EMBEDDED_NAMES, default_ranks, embedded_teacher
from .fingerprint import describe_differences, differences, fingerprint
from .run import run_sweep
from .store import RESULTS_FILE, TEACHER_DIR, SweepStore
from .students import build_student, student_dir


__all__ = [
    "EMBEDDED_ARCHITECTURES",
    "EMBEDDED_NAMES",
    "FINETUNE_MODES",
    "RESULTS_FILE",
    "SweepArguments",
    "SweepContext",
    "SweepError",
    "SweepStore",
    "TEACHER_DIR",
    "build_student",
    "default_ranks",
    "describe_differences",
    "differences",
    "embedded_teacher",
    "fingerprint",
    "run_sweep",
    "student_dir",
]

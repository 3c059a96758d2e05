"""Distillation of low-rank students from a frozen teacher.

- `losses`: the pure loss functions (geometric, logits, kd, bridged, cosine embedding).
- `config`: `DistillationConfig`, `TrainingArguments` plus the method's own fields.
- `targets`: teacher preparation, block-output hooks, a batch's teacher targets and one student's loss.
- `trainer`: `DistillationTrainer` (a transformers `Trainer`) for one student.
- `group_trainer`: `GroupDistillationTrainer` (a transformers `Trainer`): a group of students on the same batches,
  one teacher pass per batch, each student clipped and stopped alone, checkpointed as a `GroupCheckpoint`.
- `student_group`, `group_evaluation`: the group's students and records, its callbacks, its evaluation.
- `lockstep`: `LockstepTrainer`, the sweep's entry point: one `GroupDistillationTrainer` per group, resumed.
- `flags`: what the group's training does with every `TrainingArguments` field (honoured, harmless, refused);
  `feature_checks`: trackers, evaluation and compile settings that cannot work.
- `sampling`: the seeded data order, a function of (seed, epoch); `checkpoint`: mid-training checkpoints;
  `rng`: a model's private RNG stream.
- `nested`: `NestedRankSchedule`, the ranks each batch of nested-rank training distils.
- `evaluation`: accuracy, calibration and noise robustness of several models in one pass.
"""

from .checkpoint import CheckpointError, GroupCheckpoint, TrainingPosition
from .config import DistillationConfig
from .evaluation import EvalResult, evaluate_models, example_noise
from .flags import HARMLESS, HONOURED, NUMBER_CHANGING, REFUSED, check_training_arguments, plain_value
from .group_trainer import GroupDistillationTrainer
from .lockstep import LockstepTrainer, TrainResult, build_optimizer, num_update_steps
from .losses import (
    DISTILLATION_MODES,
    bridged_distillation_loss,
    cosine_embedding_loss,
    distillation_loss,
    geometric_loss,
    kd_loss,
    mse_cosine_loss,
)
from .nested import NESTED_DISTRIBUTIONS, NESTED_STRATEGIES, NestedRankSchedule
from .rng import RNGStream
from .sampling import derived_seed
from .student_group import StudentGroup
from .targets import (
    BlockOutputRecorder,
    FinalTokenRecorder,
    is_bridged,
    prepare_teacher,
    student_loss,
    teacher_targets,
)
from .trainer import DistillationTrainer


__all__ = [
    "NESTED_DISTRIBUTIONS",
    "NESTED_STRATEGIES",
    "NestedRankSchedule",
    "BlockOutputRecorder",
    "CheckpointError",
    "GroupCheckpoint",
    "GroupDistillationTrainer",
    "HARMLESS",
    "HONOURED",
    "NUMBER_CHANGING",
    "REFUSED",
    "TrainingPosition",
    "check_training_arguments",
    "DISTILLATION_MODES",
    "DistillationConfig",
    "DistillationTrainer",
    "EvalResult",
    "FinalTokenRecorder",
    "LockstepTrainer",
    "RNGStream",
    "StudentGroup",
    "TrainResult",
    "bridged_distillation_loss",
    "build_optimizer",
    "cosine_embedding_loss",
    "derived_seed",
    "distillation_loss",
    "evaluate_models",
    "example_noise",
    "geometric_loss",
    "is_bridged",
    "kd_loss",
    "mse_cosine_loss",
    "num_update_steps",
    "plain_value",
    "prepare_teacher",
    "student_loss",
    "teacher_targets",
]

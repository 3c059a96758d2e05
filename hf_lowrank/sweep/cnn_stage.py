"""The CNN students of the dimensional-collapse comparison, distilled beside the rank students."""

from ..distillation import LockstepTrainer
from ..models import CNNEmbeddingStudent, count_parameters
from ..results import CNNStudentResult
from .context import SweepContext
from .measurements import diagnose, robustness
from .students import seeded


__all__ = ["run_cnn_stage"]


def run_cnn_stage(ctx: SweepContext) -> None:
    """Distil the CNN students not yet recorded, in lock-step; evaluate, diagnose, save and record each."""
    done = {r.capacity for r in ctx.results.cnn_students if (ctx.store.dir / r.model_dir).is_dir()}
    pending = [c for c in ctx.sweep.cnn_students or [] if c not in done]
    if not pending:
        return
    accelerator, args = ctx.accelerator, ctx.args
    sample = ctx.processed["train"][: args.per_device_train_batch_size]["pixel_values"].to(accelerator.device)
    students = {}
    for capacity in pending:
        with seeded(args.seed, "cnn", capacity):
            students[capacity] = CNNEmbeddingStudent.from_teacher(ctx.teacher, capacity, sample)
    trainer = LockstepTrainer(accelerator, args, teacher=ctx.teacher, description=f"distilling CNN students {pending}")
    checkpoint = ctx.store.checkpoint({"stage": "cnn", "seed": args.seed})
    outcomes = trainer.train({f"cnn-{c}": s for c, s in students.items()}, ctx.processed["train"], checkpoint)
    evaluations = ctx.evaluate(students, "evaluating CNN students")
    for capacity, student in students.items():
        outcome, evaluation = outcomes[f"cnn-{capacity}"], evaluations[capacity]
        model_dir = ctx.store.save_model(f"cnn-{capacity}", student)
        ctx.results.record_cnn_student(
            CNNStudentResult(
                capacity=capacity,
                status=outcome.status,
                error=outcome.error,
                seed=args.seed,
                parameters=count_parameters(accelerator.unwrap_model(student), trainable_only=True),
                accuracy=evaluation.accuracy,
                model_dir=model_dir,
                normalized_accuracy=evaluation.accuracy / ctx.results.teacher.accuracy,
                train_seconds=outcome.train_seconds,
                **robustness(evaluation),
                diagnostics=diagnose(ctx, model_dir, student),
            )
        )
        ctx.store.write()
    ctx.store.remove_checkpoint()

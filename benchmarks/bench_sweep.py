"""Lock-step sweep against the one-rank-at-a-time loop, side by side in one run.

A 6-rank sweep trains 6 students. One at a time, every student's run recomputes the teacher's forward pass on
every batch; in lock-step the teacher runs once per batch for all of them. Both use the same LockstepTrainer (K=6
against 6 runs of K=1), the same data and the same number of steps, so the ratio isolates the shared teacher.

Printed beside the measured wall-time ratio: the ideal one, (teacher + sum of students) / sum of (teacher +
student), from the measured per-step times of the shared work (teacher forward and batch loading, both done once
per batch in lock-step and once per batch per student one at a time) and of each student's own step. Also: the
cost of a mid-training checkpoint of the group (the lock-step run again, checkpointed after every step).

    python benchmarks/bench_sweep.py [--steps 40] [--vit_b32_steps 3]
"""

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from datasets import Array3D, Dataset, Features, Value
from torch.utils.data import DataLoader
from transformers import ViTConfig, ViTForImageClassification

from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.data import collate_examples
from hf_lowrank.distillation import (
    BlockOutputRecorder,
    DistillationConfig,
    GroupCheckpoint,
    LockstepTrainer,
    teacher_targets,
)
from hf_lowrank.models import VIT_B32_CIFAR100
from hf_lowrank.sweep import embedded_teacher


def random_images(num: int, size: int, labels: int) -> Dataset:
    """Random images in the sweep's preprocessed format (fixed-shape Array3D pixel_values)."""
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(num, 3, size, size, generator=generator)
    features = Features(
        {"pixel_values": Array3D((3, size, size), "float32"), "labels": Value("int64"), "index": Value("int64")}
    )
    return Dataset.from_dict(
        {
            "pixel_values": pixels.numpy(),
            "labels": torch.randint(0, labels, (num,), generator=generator).tolist(),
            "index": list(range(num)),
        },
        features=features,
    ).with_format("torch")


def measure(name: str, teacher, ranks: list[int], data: Dataset, args: DistillationConfig, accelerator) -> None:
    def students(subset):
        return {f"rank-{r}": FactorizedViTForImageClassification.from_teacher(teacher, rank=r) for r in subset}

    group = students(ranks)
    start = time.perf_counter()
    lockstep = LockstepTrainer(accelerator, args, teacher).train(group, data)
    lockstep_seconds = time.perf_counter() - start

    # The same lock-step run, checkpointed after every optimizer step (--save_steps 1): the cost of a checkpoint.
    checkpoint_args = copy.copy(args)
    checkpoint_args.save_steps = 1
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = GroupCheckpoint(Path(directory) / "checkpoint", {"bench": name})
        group = students(ranks)
        start = time.perf_counter()
        LockstepTrainer(accelerator, checkpoint_args, teacher).train(group, data, checkpoint)
        checkpointed_seconds = time.perf_counter() - start
        latest = checkpoint.latest()
        checkpoint_bytes = sum(f.stat().st_size for f in latest.iterdir()) if latest else 0

    sequential_seconds = 0.0
    for rank in ranks:
        single = students([rank])
        start = time.perf_counter()
        LockstepTrainer(accelerator, args, teacher).train(single, data)
        sequential_seconds += time.perf_counter() - start

    # Shared costs per step: loading the batch, and the teacher's forward pass (with block capture).
    start = time.perf_counter()
    for _ in DataLoader(data, batch_size=args.per_device_train_batch_size, shuffle=True, collate_fn=collate_examples):
        pass
    loading_seconds = time.perf_counter() - start
    recorder = BlockOutputRecorder(teacher) if args.distillation_mode == "geometric" else None
    batches = [
        data[i : i + args.per_device_train_batch_size]["pixel_values"]
        for i in range(0, args.max_steps * args.per_device_train_batch_size, args.per_device_train_batch_size)
    ]
    start = time.perf_counter()
    for pixel_values in batches:
        teacher_targets(teacher, recorder, {"pixel_values": pixel_values})
    teacher_seconds = time.perf_counter() - start
    students_seconds = [lockstep[f"rank-{r}"].train_seconds for r in ranks]
    shared = loading_seconds + teacher_seconds
    ideal = (shared + sum(students_seconds)) / sum(shared + s for s in students_seconds)

    print(
        f"\n{name}: ranks {ranks}, {args.max_steps} steps of batch {args.per_device_train_batch_size}, "
        f"{args.distillation_mode} distillation"
    )
    print(
        f"  data loading {loading_seconds / args.max_steps * 1e3:.1f} ms/step, teacher forward "
        f"{teacher_seconds / args.max_steps * 1e3:.1f} ms/step; students "
        + ", ".join(f"r{r} {s / args.max_steps * 1e3:.1f}" for r, s in zip(ranks, students_seconds))
        + " ms/step"
    )
    print(f"  one rank at a time: {sequential_seconds:.2f} s   lock-step: {lockstep_seconds:.2f} s")
    print(f"  lock-step / one-at-a-time: measured {lockstep_seconds / sequential_seconds:.3f}, ideal {ideal:.3f}")
    saves = args.max_steps - 1  # a checkpoint after every step but the last
    per_save = (checkpointed_seconds - lockstep_seconds) / max(1, saves)
    print(
        f"  checkpoint of the group ({checkpoint_bytes / 2**20:.1f} MiB): {per_save:.2f} s each "
        f"({saves} saves: lock-step {checkpointed_seconds:.2f} s with, {lockstep_seconds:.2f} s without), "
        f"{per_save / (lockstep_seconds / args.max_steps):.2f} lock-step steps"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps on the embedded digits geometry")
    parser.add_argument("--vit_b32_steps", type=int, default=3, help="steps on the ViT-B/32 geometry")
    options = parser.parse_args()

    small_args = DistillationConfig(
        output_dir="outputs/bench",
        max_steps=options.steps,
        per_device_train_batch_size=64,
        learning_rate=1e-3,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    big_args = DistillationConfig(
        output_dir="outputs/bench",
        max_steps=options.vit_b32_steps,
        per_device_train_batch_size=8,
        learning_rate=1e-4,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    accelerator = Accelerator(cpu=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    torch.manual_seed(0)
    teacher, _ = embedded_teacher([str(d) for d in range(10)])
    measure(
        "embedded digits ViT (width 48, 3 blocks, 8x8 inputs)",
        teacher.eval(),
        [1, 2, 4, 8, 16, 32],
        random_images(64 * options.steps, 8, 10),
        small_args,
        accelerator,
    )

    geometry = VIT_B32_CIFAR100
    vit_b32 = ViTForImageClassification(ViTConfig(**geometry)).eval()
    measure(
        "ViT-B/32 geometry (random weights, 224x224 inputs)",
        vit_b32,
        [8, 16, 32, 64, 128, 256],
        random_images(8 * options.vit_b32_steps, 224, 100),
        big_args,
        accelerator,
    )


if __name__ == "__main__":
    main()

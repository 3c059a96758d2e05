"""Tiny sweep settings shared by the sweep tests: seconds per run on two CPU cores."""

import sys
from pathlib import Path

import torch
from datasets import Array3D, Dataset, Features, Value


REPO = Path(__file__).resolve().parents[1]
SWEEP_SCRIPT = REPO / "scripts" / "sweep.py"

TINY_SWEEP = [
    "--max_train_samples",
    "160",
    "--max_test_samples",
    "90",
    "--teacher_num_train_epochs",
    "4",
    "--num_train_epochs",
    "2",
    "--per_device_train_batch_size",
    "32",
    "--disable_tqdm",
    "true",
]

# accelerate launch of two real processes (DDP over gloo on CPU).
TWO_PROCESSES = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]


def sweep_argv(output_dir, *extra) -> list[str]:
    return ["--output_dir", str(output_dir), *TINY_SWEEP, *map(str, extra)]


def pixel_dataset(num_examples: int, image_size: int, num_labels: int, seed: int = 0) -> Dataset:
    """Random images in the sweep's preprocessed format: pixel_values, labels, index."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(num_examples, 3, image_size, image_size, generator=generator)
    labels = torch.randint(0, num_labels, (num_examples,), generator=generator)
    features = Features(
        {
            "pixel_values": Array3D((3, image_size, image_size), "float32"),
            "labels": Value("int64"),
            "index": Value("int64"),
        }
    )
    return Dataset.from_dict(
        {"pixel_values": pixels.numpy(), "labels": labels.tolist(), "index": list(range(num_examples))},
        features=features,
    ).with_format("torch")

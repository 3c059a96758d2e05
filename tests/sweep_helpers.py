"""Tiny sweep settings shared by the sweep tests: seconds per run on two CPU cores."""

import csv
import sys
from pathlib import Path

import numpy as np
import torch
from datasets import Array3D, Dataset, Features, Value
from transformers import BertTokenizer


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


# The ranks of the session's shared finished sweep (conftest.py's `finished_sweep`).
FINISHED_RANKS = (1, 3)


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


WORDS = ["good", "bad", "movie", "plot", "the", "a", "was", "great", "awful", "fine"]


def text_csv(path, rows: int = 120, seed: int = 0) -> str:
    """Short sentences whose label (pos / neg) is carried by the words good/great vs bad/awful, seeded."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "sentiment"])
        for i in range(rows):
            positive = i % 2 == 0
            cue = rng.choice(["good", "great"] if positive else ["bad", "awful"])
            filler = rng.choice(["the", "a", "movie", "plot", "was", "fine"], size=rng.integers(2, 6))
            words = [*filler, cue]
            rng.shuffle(words)
            writer.writerow([" ".join(words), "pos" if positive else "neg"])
    return str(path)


def word_tokenizer(tmp_path) -> BertTokenizer:
    """A WordPiece tokenizer over the words of `text_csv` (its vocab file written into `tmp_path`)."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return BertTokenizer(vocab=str(vocab))

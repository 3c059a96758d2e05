"""Metric modules shipped with hf_lowrank: `evaluate.load("accuracy")` needs the Hub, these load by path."""

from pathlib import Path

import evaluate


__all__ = ["load_accuracy"]

ACCURACY_PATH = Path(__file__).parent / "accuracy" / "accuracy.py"


def load_accuracy(**kwargs):
    """The shipped accuracy metric (`evaluate.load` on a local file: works offline)."""
    return evaluate.load(str(ACCURACY_PATH), **kwargs)

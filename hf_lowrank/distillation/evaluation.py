"""Evaluation of several models in one pass over a test split: accuracy, per-example correctness, calibration and
accuracy under seeded Gaussian input noise, gathered across processes."""

from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data import collate_examples, model_inputs
from ..diagnostics.calibration import expected_calibration_error
from ..metrics import load_accuracy


__all__ = ["EvalResult", "evaluate_models", "example_noise"]


@dataclass
class EvalResult:
    accuracy: float
    correct: np.ndarray  # (num_examples,) bool, in dataset order
    ece: float = float("nan")  # expected calibration error, 15 bins
    noise_accuracy: dict[float, float] = field(default_factory=dict)  # sigma -> accuracy under Gaussian noise


def example_noise(indices: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal noise `(batch, *shape)` that depends only on (seed, example index): the same for every model,
    batch size and process layout."""
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(seed * 1_000_003 + int(i))) for i in indices]
    )


@torch.no_grad()
def evaluate_models(
    accelerator: Accelerator,
    models: dict[str, nn.Module],
    dataset: Dataset,
    batch_size: int,
    metric=None,
    description: str = "evaluating",
    noise_sigmas: tuple[float, ...] = (),
    noise_seed: int = 0,
) -> dict[str, EvalResult]:
    """Top-1 accuracy, per-example correctness and calibration (ECE, 15 bins) of every model on `dataset`, in one
    pass over the data; with `noise_sigmas`, also the accuracy under additive Gaussian noise of each standard
    deviation on the normalised inputs (seeded per example by `noise_seed`; images only: text inputs are token ids,
    and their `noise_accuracy` is empty).

    Predictions are gathered across processes with `gather_for_metrics` and put back in dataset order through the
    `index` column. `metric` is an `evaluate` accuracy metric (defaults to the one shipped with hf_lowrank).
    """
    if metric is None:
        metric = load_accuracy()
    loader = accelerator.prepare(DataLoader(dataset, batch_size=batch_size, collate_fn=collate_examples))
    for model in models.values():
        model.eval()
    predictions = {key: [] for key in models}
    confidences = {key: [] for key in models}
    noisy = {(key, sigma): [] for key in models for sigma in noise_sigmas}
    references, indices = [], []
    for batch in tqdm(loader, desc=description, disable=not accelerator.is_local_main_process, leave=False):
        labels, index = accelerator.gather_for_metrics((batch["labels"], batch["index"]))
        references.append(labels.cpu())
        indices.append(index.cpu())
        inputs = model_inputs(batch)
        pixel_values = inputs.get("pixel_values")  # None for text: no input noise
        noise = (
            example_noise(batch["index"], pixel_values.shape[1:], noise_seed).to(pixel_values)
            if noise_sigmas and pixel_values is not None
            else None
        )
        for key, model in models.items():
            probabilities = model(**inputs).logits.softmax(-1)  # (batch, num_labels)
            confidence, predicted = probabilities.max(-1)
            predicted, confidence = accelerator.gather_for_metrics((predicted, confidence))
            predictions[key].append(predicted.cpu())
            confidences[key].append(confidence.float().cpu())
            for sigma in noise_sigmas if noise is not None else ():
                noisy_predicted = model(**inputs | {"pixel_values": pixel_values + sigma * noise}).logits.argmax(-1)
                noisy[(key, sigma)].append(accelerator.gather_for_metrics(noisy_predicted).cpu())
    order = torch.argsort(torch.cat(indices))
    references = torch.cat(references)[order].numpy()
    results = {}
    for key in models:
        predicted = torch.cat(predictions[key])[order].numpy()
        accuracy = metric.compute(predictions=predicted.tolist(), references=references.tolist())["accuracy"]
        correct = predicted == references
        ece = expected_calibration_error(torch.cat(confidences[key])[order].numpy(), correct)
        robust = {
            sigma: float((torch.cat(noisy[(key, sigma)])[order].numpy() == references).mean())
            for sigma in noise_sigmas
            if noisy[(key, sigma)]
        }
        results[key] = EvalResult(float(accuracy), correct, ece, robust)
    return results

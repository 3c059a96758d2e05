"""The training data order: a seeded shuffle that is a function of (seed, epoch) alone, so a resumed run can start
any epoch, at any batch, without replaying the ones before it."""

import numpy as np
import torch
from torch.utils.data import Sampler


__all__ = ["EpochShuffleSampler", "epoch_permutation"]


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch `epoch`: a permutation of range(num_examples) drawn from a generator seeded by
    (seed, epoch) through numpy's SeedSequence (independent streams for every pair). Shape (num_examples,)."""
    stream = int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0])
    return torch.randperm(num_examples, generator=torch.Generator().manual_seed(stream))


class EpochShuffleSampler(Sampler[int]):
    """Yields `epoch_permutation(num_examples, seed, epoch)`; `set_epoch` (called by accelerate's data loaders)
    chooses the epoch. The same on every process: accelerate shards the batches, not the order."""

    def __init__(self, num_examples: int, seed: int):
        self.num_examples, self.seed, self.epoch = num_examples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        yield from epoch_permutation(self.num_examples, self.seed, self.epoch).tolist()

    def __len__(self) -> int:
        return self.num_examples

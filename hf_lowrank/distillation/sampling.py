"""The training data order: a seeded shuffle that is a function of (seed, epoch) alone, so a resumed run can start
any epoch, at any batch, without replaying the ones before it."""

import numpy as np
import torch
from torch.utils.data import Sampler


__all__ = ["EpochShuffleSampler", "derived_seed", "epoch_permutation"]


def derived_seed(*keys: int) -> int:
    """A 64-bit seed that is a function of `keys` (non-negative integers) alone, through numpy's SeedSequence:
    independent streams for distinct keys (seed 0 epoch 1 is not seed 1 epoch 0)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0])


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch `epoch`: a permutation of range(num_examples) drawn from a generator seeded by
    `derived_seed(seed, epoch)`. Shape (num_examples,)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, epoch))
    return torch.randperm(num_examples, generator=generator)


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

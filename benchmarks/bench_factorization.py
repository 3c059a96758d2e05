"""Building the students of a sweep on ViT-B/32 geometry: K students from one shared decomposition against one
student from scratch, side by side in one run; and the cost of the data-aware inits' calibration.

A student built on its own decomposes every teacher layer (72 SVDs on ViT-B/32). A sweep decomposes each layer
once (`decompose_layers`) and builds every rank from it (`from_teacher(decompositions=...)`), so K students should
cost about one decomposition plus K cheap copies. Printed: the time to build one student from scratch, the time to
build all K (decomposition included) and their ratio (target: at most 1.3 for K = 6), per init; the calibration
pass (statistics gathered with hooks in float64), the bytes the statistics and each init's decompositions hold, and
the process's peak resident memory after each step.

    python benchmarks/bench_factorization.py [--ranks 8 16 32 64 128 256] [--calibration_images 32]
"""

import argparse
import resource
import time

import torch
from transformers import ViTConfig, ViTForImageClassification

from hf_lowrank import FactorizedViTForImageClassification
from hf_lowrank.factorization import collect_input_statistics, decompose_layers, fallback_summary
from hf_lowrank.models import VIT_B32_CIFAR100


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encoder_linears(teacher) -> list[str]:
    return [n for n, m in teacher.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n]


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--calibration_images", type=int, default=32, help="random 224x224 images for calibration")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    torch.manual_seed(0)
    teacher = ViTForImageClassification(ViTConfig(**VIT_B32_CIFAR100)).eval()
    names = encoder_linears(teacher)
    print(f"ViT-B/32 geometry, random weights: {len(names)} encoder linears, torch threads {torch.get_num_threads()}")
    print(f"peak RSS after building the teacher: {peak_rss_mib():,.0f} MiB")

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.calibration_images, 3, 224, 224, generator=generator)
    batches = [{"pixel_values": chunk} for chunk in images.split(args.batch)]
    statistics, calibration_seconds = timed(lambda: collect_input_statistics(teacher, batches, names))
    tokens = next(iter(statistics.values())).num_tokens
    statistics_bytes = sum(s.gram.numel() * s.gram.element_size() for s in statistics.values())
    print(
        f"calibration: {args.calibration_images} images ({tokens} tokens per layer) in {calibration_seconds:.2f} s; "
        f"statistics hold {statistics_bytes / 2**20:,.0f} MiB (float64); peak RSS {peak_rss_mib():,.0f} MiB"
    )

    top = args.ranks[len(args.ranks) // 2]
    print(f"\n{'init':<11}{'decompose s':>12}{'one student s':>15}{f'{len(args.ranks)} students s':>15}"
          f"{'ratio':>7}{'held MiB':>10}{'peak RSS MiB':>14}")  # fmt: skip
    for init in ("svd", "whitened", "activation"):
        calibration = statistics if init != "svd" else None
        _, one = timed(
            lambda: FactorizedViTForImageClassification.from_teacher(
                teacher, rank=top, init=init, calibration=calibration
            )
        )  # from scratch: decomposes every layer itself

        def build_all():
            decompositions = decompose_layers(teacher, names, init, statistics if init != "svd" else None)
            for rank in args.ranks:
                FactorizedViTForImageClassification.from_teacher(
                    teacher, rank=rank, init=init, decompositions=decompositions
                )
            return decompositions

        decompositions, every = timed(build_all)
        _, decompose = timed(lambda: decompose_layers(teacher, names, init, calibration))
        held = sum(d.nbytes() for d in decompositions.values()) / 2**20
        print(
            f"{init:<11}{decompose:>12.2f}{one:>15.2f}{every:>15.2f}{every / one:>6.2f}x{held:>10,.0f}"
            f"{peak_rss_mib():>14,.0f}"
        )
        for line in fallback_summary(decompositions):
            print(f"    {line}")
        del decompositions


if __name__ == "__main__":
    main()

"""Inference cost of factorized ViT-B/32 students against the dense model, side by side in one run.

Random weights (nothing is downloaded), CIFAR-100 geometry (224x224 inputs, 100 classes), batch 32, CPU.
Prints parameters, analytic FLOPs, measured latency, measured speedup beside the FLOP-ratio speedup, and, to
explain the gap between the two, where the time goes (torch.profiler: matrix products of the encoder linears
against everything else) and how a single factorized GEMM alone compares with its FLOP ratio.

    python benchmarks/bench_inference.py [--ranks 8 16 32 64 128] [--batch 32] [--repeats 7]
"""

import argparse
import platform
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import ViTConfig, ViTForImageClassification

from hf_lowrank import (
    FactorizedLinear,
    FactorizedViTConfig,
    FactorizedViTForImageClassification,
    count_parameters,
    vit_forward_flops,
)
from hf_lowrank.models import VIT_B32_CIFAR100


GEMM_OPS = ("aten::addmm", "aten::mm")  # the linear layers' matrix products (attention runs inside sdpa)


def timed(model, inputs) -> float:
    start = time.perf_counter()
    model(inputs)
    return time.perf_counter() - start


def time_breakdown(model, inputs) -> dict[str, float]:
    """Share of one forward pass's CPU time per aten op (self time), largest first."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(inputs)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {e.key: e.self_cpu_time_total / total for e in events}
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def gemm_microbenchmark(ranks, tokens, repeats):
    """One 768 -> 3072 layer (fc1) on `tokens` rows: dense against factorized, measured and FLOP-ideal speedups."""
    x = torch.randn(tokens, 768)
    dense = torch.nn.Linear(768, 3072)
    rows = []
    base = min(timed(dense, x) for _ in range(repeats * 4))
    for rank in ranks:
        layer = FactorizedLinear(768, 3072, rank)
        t = min(timed(layer, x) for _ in range(repeats * 4))
        rows.append((rank, base / t, 768 * 3072 / (rank * (768 + 3072)), t * 1e3))
    return base * 1e3, rows


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7, help="timed forward passes per model (after 2 warm-ups)")
    args = parser.parse_args()

    torch.manual_seed(0)
    models = {"dense": ViTForImageClassification(ViTConfig(**VIT_B32_CIFAR100)).eval()}
    for rank in args.ranks:
        models[f"rank {rank}"] = FactorizedViTForImageClassification(
            FactorizedViTConfig(**VIT_B32_CIFAR100, rank=rank)
        ).eval()
    inputs = torch.randn(args.batch, 3, 224, 224)

    for model in models.values():  # warm-up
        for _ in range(2):
            model(inputs)
    times = {name: [] for name in models}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every model alike
        for name, model in models.items():
            times[name].append(timed(model, inputs))

    print(
        f"ViT-B/32 geometry, random weights, batch {args.batch}, CPU ({platform.processor() or platform.machine()}),"
        f" torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} interleaved runs per model;"
        " speedups from the fastest run (the least noisy estimate, as timeit advises)"
    )
    dense_latency = min(times["dense"])
    dense_flops = vit_forward_flops(models["dense"])
    dense_params = count_parameters(models["dense"])
    header = (
        f"{'model':<9} {'params':>12} {'compress':>8} {'GFLOPs/img':>10} {'best ms':>8} {'median ms':>9} "
        f"{'speedup':>8} {'FLOP ratio':>10} {'GEMM time':>9}"
    )
    print(header)
    breakdowns = {}
    for name, model in models.items():
        latency = min(times[name])
        flops, params = vit_forward_flops(model), count_parameters(model)
        breakdowns[name] = time_breakdown(model, inputs)
        share = sum(breakdowns[name].get(op, 0.0) for op in GEMM_OPS)
        print(
            f"{name:<9} {params:>12,} {dense_params / params:>7.2f}x {flops / 1e9:>10.3f} {latency * 1e3:>8.1f} "
            f"{statistics.median(times[name]) * 1e3:>9.1f} "
            f"{dense_latency / latency:>7.2f}x {dense_flops / flops:>9.2f}x {share:>8.0%}"
        )

    smallest = f"rank {min(args.ranks)}"
    print(f"\nwhere the time goes at {smallest} (self CPU time per op, torch.profiler):")
    print(
        "  "
        + ", ".join(f"{op.removeprefix('aten::')} {share:.0%}" for op, share in list(breakdowns[smallest].items())[:7])
    )

    tokens = args.batch * 50
    base, rows = gemm_microbenchmark(args.ranks, tokens, args.repeats)
    print(f"\nfc1 alone (768 -> 3072) on {tokens} tokens: dense {base:.2f} ms")
    print(f"{'rank':>5} {'ms':>7} {'speedup':>8} {'FLOP ratio':>10}")
    for rank, speedup, ideal, ms in rows:
        print(f"{rank:>5} {ms:>7.2f} {speedup:>7.2f}x {ideal:>9.2f}x")


if __name__ == "__main__":
    main()

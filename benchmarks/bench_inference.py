"""Inference cost of factorized ViT-B/32 students against the dense teacher, side by side in one run.

Random weights (nothing is downloaded), CIFAR-100 geometry (224x224 inputs, 100 classes), CPU, float32. For each
batch size, every model is timed in interleaved order (median of --repeats after 2 warm-ups): the dense teacher
(eager, and compiled with Inductor), and per rank the plain student (eager), its inference layout
(`for_inference()`: layers at or above their break-even rank merged to dense) eager and compiled
(`for_inference("inductor")`). Then where the time goes (torch.profiler) for the plain and the compiled rank-32
student, one factorized GEMM alone against its FLOP ratio, and onnxruntime on the exported rank-32 student and
teacher (`export_onnx`).

    python benchmarks/bench_inference.py [--ranks 8 32 128 256 512] [--batches 1 32] [--repeats 5]
"""

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import ViTConfig, ViTForImageClassification

from hf_lowrank import FactorizedLinear, LowRankForImageClassification, count_parameters, vit_forward_flops
from hf_lowrank.inference import device_name, export_onnx
from hf_lowrank.models import VIT_B32_CIFAR100


STATIC = {"dynamic": False}  # one static graph per batch size
torch._dynamo.config.recompile_limit = 64  # every student class shares one forward: one graph per rank and batch


def timed(model, inputs) -> float:
    start = time.perf_counter()
    model(pixel_values=inputs)
    return time.perf_counter() - start


def time_breakdown(model, inputs, top: int = 7) -> str:
    """The largest shares of one forward pass's CPU self time, per op."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(pixel_values=inputs)
    events = [e for e in prof.key_averages() if not e.key.startswith(("Torch-Compiled", "TorchDynamo"))]
    total = sum(e.self_cpu_time_total for e in events)
    shares = sorted(((e.key, e.self_cpu_time_total / total) for e in events), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{key.removeprefix('aten::')[:40]} {share:.0%}" for key, share in shares)


def gemm_microbenchmark(ranks, tokens, repeats):
    """One 768 -> 3072 layer (fc1) on `tokens` rows: dense against factorized, measured and FLOP-ideal speedups."""
    x = torch.randn(tokens, 768)
    dense = torch.nn.Linear(768, 3072)
    base = min(_time_call(dense, x) for _ in range(repeats * 4))
    rows = []
    for rank in [r for r in ranks if r < 614]:  # 614: fc1's break-even rank
        layer = FactorizedLinear(768, 3072, rank)
        t = min(_time_call(layer, x) for _ in range(repeats * 4))
        rows.append((rank, base / t, 768 * 3072 / (rank * (768 + 3072)), t * 1e3))
    return base * 1e3, rows


def _time_call(module, x) -> float:
    start = time.perf_counter()
    module(x)
    return time.perf_counter() - start


def onnx_latencies(models: dict, batches: list[int], repeats: int, directory: Path) -> dict:
    """name -> batch -> median onnxruntime latency (ms) of the model exported with `export_onnx`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    out = {}
    for name, model in models.items():
        exported = export_onnx(model, {"pixel_values": torch.randn(2, 3, 224, 224)}, directory / f"{name}.onnx")
        session = onnxruntime.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
        out[name] = {"export_seconds": exported.export_seconds, "max_abs_difference": exported.max_abs_difference}
        for batch in batches:
            x = {"pixel_values": np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)}
            for _ in range(2):
                session.run(None, x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                session.run(None, x)
                times.append(time.perf_counter() - start)
            out[name][batch] = statistics.median(times) * 1e3
        exported.path.unlink()
    return out


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 32, 128, 256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5, help="timed forward passes per model (after 2 warm-ups)")
    parser.add_argument("--no_compile", action="store_true", help="skip the Inductor columns")
    parser.add_argument("--onnx_rank", type=int, default=32, help="the student exported to ONNX (0: no ONNX)")
    args = parser.parse_args()

    torch.manual_seed(0)
    teacher = ViTForImageClassification(ViTConfig(**VIT_B32_CIFAR100)).eval()
    plain = {rank: LowRankForImageClassification.from_teacher(teacher, rank=rank) for rank in args.ranks}
    variants = {("teacher", "eager"): teacher}
    if not args.no_compile:
        variants[("teacher", "compiled")] = copy.deepcopy(teacher)
        variants[("teacher", "compiled")].compile(**STATIC)
    for rank, student in plain.items():
        variants[(rank, "plain")] = student
        variants[(rank, "layout")] = copy.deepcopy(student).for_inference()
        if not args.no_compile:
            variants[(rank, "compiled")] = copy.deepcopy(student).for_inference("inductor", compile_options=STATIC)

    print(
        f"ViT-B/32 geometry, random weights, {device_name(torch.device('cpu'))}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, float32; median of {args.repeats} interleaved runs after 2 warm-ups "
        "(the first compiles). plain: the student as trained (its parameters, compression and FLOP ratio); layout: "
        "for_inference() (layers at or above 0.8 of their break-even rank merged: 'merged'); compiled: "
        "for_inference('inductor'). Speedups: teacher eager / student eager layout, and teacher compiled / student "
        "compiled; 'of FLOPs': that speedup / the student's FLOP ratio."
    )
    teacher_flops, teacher_params = vit_forward_flops(teacher), count_parameters(teacher)
    for batch in args.batches:
        inputs = torch.randn(batch, 3, 224, 224)
        compile_seconds = {}
        for key, model in variants.items():  # warm-up (compiles)
            start = time.perf_counter()
            model(pixel_values=inputs)
            compile_seconds[key] = time.perf_counter() - start
            model(pixel_values=inputs)
        times = {key: [] for key in variants}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits every model alike
            for key, model in variants.items():
                times[key].append(timed(model, inputs))
        ms = {key: statistics.median(value) * 1e3 for key, value in times.items()}
        print(f"\nbatch {batch}")
        print(
            f"{'model':<9} {'params':>11} {'compress':>8} {'FLOP ratio':>10} {'plain ms':>9} {'layout ms':>9} "
            f"{'compiled ms':>11} {'merged':>7} {'speedup eager':>13} {'of FLOPs':>8} {'speedup compiled':>16} "
            f"{'of FLOPs':>8}"
        )
        compiled_teacher = ms.get(("teacher", "compiled"))
        print(
            f"{'teacher':<9} {teacher_params:>11,} {'1.00x':>8} {'1.00x':>10} {ms['teacher', 'eager']:>9.1f} "
            f"{'':>9} {compiled_teacher or float('nan'):>11.1f}"
        )
        for rank in args.ranks:
            layout, student = variants[(rank, "layout")], variants[(rank, "plain")]
            flop_ratio = teacher_flops / vit_forward_flops(student)  # the student's, as trained
            eager_speedup = ms["teacher", "eager"] / ms[rank, "layout"]
            compiled_ms = ms.get((rank, "compiled"), float("nan"))
            compiled_speedup = (compiled_teacher or float("nan")) / compiled_ms
            merged = len(layout.config.merged_layers or {})
            total = merged + len(layout.config.factorized_layers or {})
            print(
                f"{'rank ' + str(rank):<9} {count_parameters(student):>11,} "
                f"{teacher_params / count_parameters(student):>7.2f}x {flop_ratio:>9.2f}x {ms[rank, 'plain']:>9.1f} "
                f"{ms[rank, 'layout']:>9.1f} {compiled_ms:>11.1f} {merged:>3}/{total:<3} {eager_speedup:>12.2f}x "
                f"{eager_speedup / flop_ratio:>8.2f} {compiled_speedup:>15.2f}x {compiled_speedup / flop_ratio:>8.2f}"
            )
        if not args.no_compile:
            slowest = max((s for k, s in compile_seconds.items() if k[1] == "compiled"), default=0.0)
            print(f"first call of a compiled model (compiles): up to {slowest:.1f} s")

    probe = 32 if 32 in args.ranks else args.ranks[0]
    inputs = torch.randn(args.batches[-1], 3, 224, 224)
    print(f"\nwhere the time goes at rank {probe}, batch {args.batches[-1]} (self CPU time per op, torch.profiler):")
    print(f"  plain eager: {time_breakdown(variants[(probe, 'plain')], inputs)}")
    if not args.no_compile:
        print(f"  compiled:    {time_breakdown(variants[(probe, 'compiled')], inputs)}")

    tokens = args.batches[-1] * 50
    base, rows = gemm_microbenchmark(args.ranks, tokens, args.repeats)
    print(f"\nfc1 alone (768 -> 3072) on {tokens} tokens: dense {base:.2f} ms")
    print(f"{'rank':>5} {'ms':>7} {'speedup':>8} {'FLOP ratio':>10}")
    for rank, speedup, ideal, t in rows:
        print(f"{rank:>5} {t:>7.2f} {speedup:>7.2f}x {ideal:>9.2f}x")

    if args.onnx_rank:
        student = (
            variants.get((args.onnx_rank, "layout"))
            or LowRankForImageClassification.from_teacher(teacher, rank=args.onnx_rank).for_inference()
        )
        with tempfile.TemporaryDirectory() as directory:
            onnx = onnx_latencies(
                {"teacher": teacher, f"rank {args.onnx_rank}": student}, args.batches, args.repeats, Path(directory)
            )
        print(f"\nonnxruntime (CPUExecutionProvider, {torch.get_num_threads()} intra-op threads), export_onnx files:")
        print(
            f"{'model':<9} {'export s':>8} {'max |diff|':>10} "
            + " ".join(f"{'batch ' + str(b) + ' ms':>12}" for b in args.batches)
            + " "
            + " ".join(f"{'speedup b' + str(b):>11}" for b in args.batches)
        )
        for name, row in onnx.items():
            speedups = " ".join(f"{onnx['teacher'][b] / row[b]:>10.2f}x" for b in args.batches)
            print(
                f"{name:<9} {row['export_seconds']:>8.1f} {row['max_abs_difference']:>10.1e} "
                + " ".join(f"{row[b]:>12.1f}" for b in args.batches)
                + f" {speedups}"
            )


if __name__ == "__main__":
    main()

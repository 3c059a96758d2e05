"""The nested curve against the lock-step sweep, side by side: one training run for every rank against one student
per rank, on the embedded digits teachers of two families.

Per family, four sweeps of the README's embedded default (ranks 1 ... 48, 20 epochs, seed 0), all distilling from
one teacher (the first sweep trains it, the others take it with --teacher):

- lockstep: one student per rank (the default curve);
- nested: one student at rank 48, --nested_samples 2 ranks per batch, the same 20 epochs (equal optimizer steps
  per student);
- nested + fine-tune: the same, then every rank fine-tuned alone for --finetune_steps steps;
- nested, equal compute: as many student forward/backward passes as the lock-step sweep (epochs x ranks / 2);
- with `--runs ... sandwich inplace`: nested with the sandwich rule (rank 1 and rank 48 every batch, and two ranks
  drawn from between them), and the same with in-place distillation (each smaller view also distils rank 48's
  logits, weight 1).

Printed: accuracy per rank with 95% intervals and the difference to the lock-step student of that rank (paired
bootstrap over the 360 test images), region, knee and AURAC per curve, and the wall-clock seconds of each curve's
training stage (results.json `stage_seconds`: students' training with the teacher's forward, evaluation and saving)
with its ratio to the lock-step stage. Then, on ViT-B/32 geometry with random weights, the time per optimizer step
and peak memory of nested training (one student, two views) against lock-step training of six students.

    python benchmarks/bench_nested.py [--families vit dinov2] [--finetune_steps 100] [--vit_b32_steps 3] \
        [--runs lockstep nested finetune equal sandwich inplace]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


REPO = Path(__file__).resolve().parents[1]
RANKS = [1, 2, 4, 8, 16, 32, 48]
EPOCHS = 20


def run(argv: list[str]) -> tuple[float, float]:
    """scripts/sweep.py with `argv`, in its own process; (wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(REPO / "scripts" / "sweep.py"), *argv], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"sweep failed: {' '.join(argv)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def paired_interval(a, b, seed=0, samples=1000):
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), (samples, len(a)))
    diff = a[draws].mean(1) - b[draws].mean(1)
    return np.percentile(diff, [2.5, 97.5])


def rank_text(value):
    return "-" if value is None else f"{value:.1f}"


RUNS = ("lockstep", "nested", "finetune", "equal", "sandwich", "inplace")


def family(name: str, out: Path, finetune_steps: int, extra: list[str], chosen=RUNS[:4]) -> list[str]:
    """The sweeps of `chosen` (RUNS: lockstep, nested, nested + fine-tune, nested at equal compute, nested with the
    sandwich rule and 4 ranks per batch, the same with in-place distillation of weight 1) on the embedded `name`."""
    # plain nested training: the largest rank and one drawn, every batch (the default before the remedies)
    plain = ["--curve", "nested", "--nested_sandwich", "false", "--nested_samples", "2"]
    plain += ["--nested_inplace_weight", "0"]
    nested = [*plain, "--nested_finetune_steps", "0"]
    # the smallest and the largest rank, and two drawn from between them, every batch (slimmable networks' rule)
    sandwich = ["--curve", "nested", "--nested_finetune_steps", "0", "--nested_sandwich", "true"]
    sandwich += ["--nested_samples", "4"]
    runs = {
        "lockstep": ["--curve", "lockstep"],
        "nested": nested,
        f"nested + {finetune_steps} fine-tune": [*plain, "--nested_finetune_steps", str(finetune_steps)],
        "nested, equal compute": [*nested, "--num_train_epochs", str(EPOCHS * len(RANKS) // 2)],
        "nested, sandwich (4/batch)": [*sandwich, "--nested_inplace_weight", "0"],
        "nested, sandwich + in-place": [*sandwich, "--nested_inplace_weight", "1"],
    }
    runs = {label: flags for (label, flags), key in zip(runs.items(), RUNS) if key in chosen}
    results, reports, walls = {}, {}, {}
    for i, (label, flags) in enumerate(runs.items()):
        directory = out / f"{name}-{i}"
        source = ["--teacher_architecture", name] if i == 0 else ["--teacher", str(out / f"{name}-0" / "teacher")]
        argv = ["--output_dir", str(directory), "--overwrite_output_dir", *source, "--preview_inits", "none",
                "--diagnostics_examples", "0", "--ranks", *map(str, RANKS), *flags, *extra]  # fmt: skip
        walls[label] = run(argv)
        results[label] = json.loads((directory / "results.json").read_text())
        reports[label] = json.loads((directory / "report.json").read_text())
        print(f"{name} {label}: {walls[label][0]:.0f} s", file=sys.stderr)
    teacher = results["lockstep"]["teacher"]
    base = {r["rank"]: r for r in results["lockstep"]["ranks"]}
    labels = list(runs)
    lines = [
        f"## {name}: teacher test accuracy {teacher['accuracy']:.4f}",
        "",
        "accuracy [95% interval]; for the nested curves, minus the lock-step student [paired 95% interval]",
        "",
        f"{'rank':>5} " + " ".join(f"{label:>34}" for label in labels),
    ]
    for rank in RANKS:
        cells = []
        for label in labels:
            record = next(r for r in results[label]["ranks"] if r["rank"] == rank)
            row = next(r for r in reports[label]["rows"] if r["rank"] == rank)
            lo, hi = row["accuracy_interval"]
            if label == "lockstep":
                cells.append(f"{record['accuracy']:.4f} [{lo:.3f}, {hi:.3f}]".rjust(34))
            else:
                d_lo, d_hi = paired_interval(record["correct"], base[rank]["correct"])
                diff = record["accuracy"] - base[rank]["accuracy"]
                cells.append(f"{record['accuracy']:.4f} {diff:+.4f} [{d_lo:+.3f}, {d_hi:+.3f}]".rjust(34))
        lines.append(f"{rank:>5} " + " ".join(cells))
    lock_stage = results["lockstep"]["stage_seconds"].get("lockstep-seed-0")
    lines += ["", f"{'curve':<26}{'region':>14}{'r_95 95%':>14}{'knee':>7}{'AURAC':>8}{'stage s':>9}{'ratio':>7}"
              f"{'sweep s':>9}{'peak MiB':>9}"]  # fmt: skip
    for label in labels:
        report = reports[label]
        region = report["region"]
        interval = region["r_high_interval"]
        key = "lockstep-seed-0" if label == "lockstep" else "nested-seed-0"
        stage = results[label]["stage_seconds"].get(key)
        lines.append(
            f"{label:<26}{'[' + rank_text(region['r_low']) + ', ' + rank_text(region['r_high']) + ']':>14}"
            f"{('[' + rank_text(interval[0]) + ', ' + rank_text(interval[1]) + ']') if interval else '':>14}"
            f"{rank_text(report['knee']['linear']):>7}{report['aurac']:>8.3f}{stage:>9.1f}{stage / lock_stage:>6.2f}x"
            f"{walls[label][0]:>9.0f}{walls[label][1]:>9,.0f}"
        )
    return lines + [""]


def vit_b32_steps(steps: int) -> list[str]:
    """Per-step time and peak memory on ViT-B/32 geometry: lock-step (6 students) against nested (1 student, 2
    views per batch), random weights, batch 32 of random 224x224 images, CPU or the first GPU."""
    import resource

    import torch
    from accelerate import Accelerator
    from bench_sweep import random_images  # benchmarks/bench_sweep.py
    from transformers import ViTConfig, ViTForImageClassification

    from hf_lowrank import FactorizedViTForImageClassification
    from hf_lowrank.distillation import DistillationConfig, LockstepTrainer, NestedRankSchedule
    from hf_lowrank.models import VIT_B32_CIFAR100

    torch.manual_seed(0)
    teacher = ViTForImageClassification(ViTConfig(**VIT_B32_CIFAR100))
    ranks = [8, 16, 32, 64, 128, 256]
    data = random_images(32 * (steps + 1), 224, 100)
    arguments = {
        label: DistillationConfig(
            output_dir="/tmp/bench_nested",
            max_steps=steps + 1,
            per_device_train_batch_size=32,
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
            save_strategy="no",
        )  # fmt: skip
        for label in ("lockstep", "nested")
    }  # TrainingArguments before the Accelerator: building one resets accelerate's state
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    lines = [f"ViT-B/32 geometry, {steps} optimizer steps after one warm-up, batch 32, {accelerator.device}:"]
    for label, args in arguments.items():
        if label == "lockstep":
            students = {f"rank-{r}": FactorizedViTForImageClassification.from_teacher(teacher, rank=r) for r in ranks}
            nested = None
        else:
            students = {"nested": FactorizedViTForImageClassification.from_teacher(teacher, rank=max(ranks))}
            nested = NestedRankSchedule(tuple(ranks), samples_per_step=2)
        trainer = LockstepTrainer(accelerator, args, teacher=teacher, nested=nested)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.train(students, data)
        seconds = (time.perf_counter() - start) / (steps + 1)
        memory = (
            f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
            if torch.cuda.is_available()
            else f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
        )
        lines.append(f"  {label:<9} {len(students)} model(s): {seconds:.2f} s per step (incl. warm-up), {memory}")
        del students, trainer
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="*", default=["vit", "dinov2"], help="none: the ViT-B/32 part only")
    parser.add_argument("--finetune_steps", type=int, default=100)
    parser.add_argument("--vit_b32_steps", type=int, default=3, help="0: skip the ViT-B/32 part")
    parser.add_argument("--output_dir", default="outputs/bench_nested")
    parser.add_argument(
        "--runs", nargs="+", default=list(RUNS[:4]), choices=RUNS, help="the curves to train (lockstep first)"
    )
    parser.add_argument("extra", nargs="*", help="further scripts/sweep.py flags for every run (after --)")
    args = parser.parse_args()
    if "lockstep" not in args.runs:
        parser.error(f"--runs {args.runs}: must include lockstep (it trains the teacher)")
    out = Path(args.output_dir)
    lines = []
    for name in args.families:
        table = family(name, out, args.finetune_steps, args.extra, args.runs)
        print("\n".join(table), flush=True)
        lines += table
    if args.vit_b32_steps:
        table = vit_b32_steps(args.vit_b32_steps)
        print("\n".join(table), flush=True)
        lines += table
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_nested.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""The Trainer-based group trainer against the previous hand-written lock-step loop, side by side in one run.

For each implementation (this checkout, and `--previous`: a checkout of the commit before the group trainer went
through transformers' Trainer, e.g. `git worktree add /tmp/previous 2f20d18`) and each group size K (1, 3, 6
students of ViT-B/32 geometry, random weights), one fresh process trains the group for `--steps` optimizer steps and
prints: seconds per optimizer step (the steps after the first, so that setup and the first step's allocations are
left out) and the process's peak resident memory, before training (teacher and students built) and at the end.
Peak memory growing by about the students' weights and optimizer state, not by K times one student's activations,
is what one student's backward before the next student's forward buys. Also the Trainer-based group with each of
`--variants`, against it without: `checkpointing` (`--gradient_checkpointing`: each student's blocks recomputed in
its backward), `compile` (`--torch_compile`, inductor: every student and the teacher compiled; the first step,
which compiles, is left out of the per-step time and reported apart) and `fp16` (`--fp16`: float16 autocast, a loss
scaler per student): step time and peak memory.

    python benchmarks/bench_group_trainer.py --previous /tmp/previous [--steps 4] [--batch 8] \
        [--variants checkpointing compile fp16] [--group_sizes 1 3 6]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


RANKS = [8, 16, 32, 64, 128, 256]


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


VARIANTS = {
    "checkpointing": {"activation_checkpointing": True},
    "compile": {"torch_compile": True, "torch_compile_backend": "inductor"},
    "fp16": {"fp16": True},
}


def worker(group_size: int, steps: int, batch: int, variant: str | None = None) -> dict:
    """Train `group_size` students for `steps` steps in this process; their timings and memory, as a dict."""
    import tempfile

    import torch
    from accelerate import Accelerator
    from transformers import TrainerCallback, ViTConfig, ViTForImageClassification

    from hf_lowrank import FactorizedViTForImageClassification
    from hf_lowrank.distillation import DistillationConfig, LockstepTrainer
    from hf_lowrank.models import VIT_B32_CIFAR100

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_sweep import random_images

    torch.manual_seed(0)
    teacher = ViTForImageClassification(ViTConfig(**VIT_B32_CIFAR100)).eval()
    students = {
        f"rank-{r}": FactorizedViTForImageClassification.from_teacher(teacher, rank=r) for r in RANKS[:group_size]
    }
    data = random_images(batch * steps, 224, 100)
    with tempfile.TemporaryDirectory() as directory:
        args = DistillationConfig(
            output_dir=directory, max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-4,
            report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no",
        )  # fmt: skip
        for name, value in VARIANTS.get(variant, {}).items():  # (set after construction, as the CLI's would be)
            setattr(args, name, value)
        before = _rss_mib()
        step_times = []

        def timed_step(_position=[None]):  # wraps the group's step: the time between optimizer steps
            now = time.perf_counter()
            if _position[0] is not None:
                step_times.append(now - _position[0])
            _position[0] = now

        trainer = LockstepTrainer(Accelerator(cpu=True), args, teacher)
        timed_step()
        if hasattr(trainer, "callbacks"):  # the Trainer-based group trainer: a callback at every step end

            class Timer(TrainerCallback):
                def on_step_end(self, *unused, **kwargs):
                    timed_step()

            trainer.callbacks = [Timer()]
            start = time.perf_counter()
            trainer.train(students, data)
        else:  # the previous loop: its progress bar's update at every optimizer step
            import hf_lowrank.distillation.lockstep as previous

            original = previous.tqdm

            def counting_tqdm(*a, **k):
                bar = original(*a, **k)
                update = bar.update
                bar.update = lambda n=1: (timed_step(), update(n))[1]
                return bar

            previous.tqdm = counting_tqdm
            start = time.perf_counter()
            trainer.train(students, data)
        total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    later = step_times[1:] or step_times
    return {
        "students": group_size,
        "seconds_per_step": sum(later) / len(later),
        "first_step_seconds": step_times[0] if step_times else float("nan"),
        "total_seconds": total,
        "rss_before_mib": before,
        "peak_rss_mib": peak,
    }


def run(implementation: str, path: str | None, group_size: int, steps: int, batch: int, variant=None) -> dict:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = path + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, __file__, "--worker", str(group_size), "--steps", str(steps), "--batch", str(batch)]
    command += ["--variant", variant] if variant else []
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return {"implementation": implementation, **json.loads(output.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--previous", help="a checkout of the previous implementation (its repository root)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run (>= 2)")
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument(
        "--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS), help="Trainer-based variants to run"
    )
    parser.add_argument("--group_sizes", nargs="+", type=int, default=[1, 3, 6], help="students per group (<= 6)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker is not None:
        print(json.dumps(worker(options.worker, options.steps, options.batch, options.variant)))
        return
    if not set(options.group_sizes) <= set(range(1, len(RANKS) + 1)):
        parser.error(f"--group_sizes {options.group_sizes}: each must be in 1..{len(RANKS)}")
    if options.steps < 2:
        parser.error(f"--steps {options.steps}: must be >= 2 (the first step is left out of the per-step time)")
    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; ViT-B/32 geometry, batch {options.batch}"
    )
    implementations = [("Trainer-based", None, None)]
    implementations += [("previous loop", options.previous, None)] if options.previous else []
    implementations += [(f"+ {variant}", None, variant) for variant in options.variants]
    rows = {}
    for group_size in options.group_sizes:
        for name, path, variant in implementations:
            row = run(name, path, group_size, options.steps, options.batch, variant)
            rows[name, group_size] = row
            print(
                f"  {name:>15}  K={group_size}: {row['seconds_per_step'] * 1e3:8.1f} ms/step   peak RSS "
                f"{row['peak_rss_mib']:8.0f} MiB (built: {row['rss_before_mib']:6.0f} MiB, "
                f"+{row['peak_rss_mib'] - row['rss_before_mib']:.0f} MiB in training); first step "
                f"{row['first_step_seconds']:.1f} s",
                flush=True,
            )
    for group_size in options.group_sizes:
        plain = rows["Trainer-based", group_size]
        for variant in options.variants:
            other = rows[f"+ {variant}", group_size]
            growth = (other["peak_rss_mib"] - other["rss_before_mib"]) / (
                plain["peak_rss_mib"] - plain["rss_before_mib"]
            )
            print(
                f"  K={group_size}: {variant} / without: per-step time "
                f"{other['seconds_per_step'] / plain['seconds_per_step']:.3f}, memory growth in training {growth:.3f}"
            )
    if options.previous:
        for group_size in options.group_sizes:
            new, old = rows["Trainer-based", group_size], rows["previous loop", group_size]
            print(
                f"  K={group_size}: Trainer-based / previous per-step time "
                f"{new['seconds_per_step'] / old['seconds_per_step']:.3f}, "
                f"peak RSS {new['peak_rss_mib'] / old['peak_rss_mib']:.3f}"
            )


if __name__ == "__main__":
    main()

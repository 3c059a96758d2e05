"""The teacher's factorization, computed once per sweep and shared by every student of every rank and seed: the
calibration statistics (one pass of the teacher over `--calibration_samples` seeded training examples), each
encoder linear's decomposition for every init the sweep uses, and the layers' whitened spectra for `--param_budget`.

Every process computes the same statistics on the same examples (no communication; DDP then starts every student
from the main process's copy anyway)."""

import re
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data import collate_examples, model_inputs
from ..factorization import (
    DATA_AWARE_INITS,
    LayerSpectrum,
    collect_input_statistics,
    decompose_layers,
    fallback_summary,
)
from ..models import name_matches
from .arguments import SweepError
from .families import encoder_linears


__all__ = ["TeacherFactorization", "calibration_indices", "factorized_layer_names", "token_counts"]


def calibration_indices(num_examples: int, count: int, seed: int) -> list[int]:
    """`count` distinct training rows (all of them if fewer), drawn by `seed`, in increasing order."""
    chosen = np.random.default_rng(seed).permutation(num_examples)[: min(count, num_examples)]
    return sorted(int(i) for i in chosen)


def factorized_layer_names(ctx) -> list[str]:
    """The teacher's encoder linears the students factorize: those inside its blocks, minus `--exclude_modules`."""
    excluded = ctx.sweep.exclude_modules or ()
    return [
        name for name in encoder_linears(ctx.teacher, ctx.layout) if not any(name_matches(name, p) for p in excluded)
    ]


def token_counts(statistics: dict) -> tuple[int, dict[str, int] | None]:
    """The fewest calibration tokens any layer saw, and every layer's count where they differ (None where all layers
    saw as many: ViT, BERT; Swin's later stages see fewer tokens after each patch merging)."""
    counts = {name: int(stat.num_tokens) for name, stat in statistics.items()}
    if not counts:
        return 0, None
    return min(counts.values()), (counts if len(set(counts.values())) > 1 else None)


class TeacherFactorization:
    """What every student of a sweep starts from, computed on first use and kept: `statistics()`,
    `decompositions(init)`, `spectra()`; `record()` is what results.json keeps of it (times, sizes, fallbacks)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.names = factorized_layer_names(ctx)
        self._statistics = None
        self._decompositions = {}
        self.seconds = {}
        self.fallbacks = {}
        self.calibration_examples = 0
        self.calibration_tokens = 0  # the fewest tokens any layer saw
        self.calibration_tokens_per_layer = None  # name -> tokens, where layers saw different counts (Swin's stages)
        self.statistics_bytes = 0
        self.decomposition_bytes = {}
        self._released = False

    def _needs_fisher(self) -> bool:
        sweep = self.ctx.sweep
        return sweep.init == "fisher" or "fisher" in sweep.preview_inits

    def statistics(self) -> dict:
        """name -> `InputStatistics` of the teacher's factorized layers on the calibration examples."""
        if self._statistics is not None:
            return self._statistics
        if self.calibration_examples:
            raise RuntimeError("the calibration statistics were released; gather what needs them before release().")
        ctx = self.ctx
        count = ctx.sweep.calibration_samples
        if count == 0:
            raise SweepError("--calibration_samples 0: the data-aware inits and --param_budget need calibration data.")
        train = ctx.processed["train"]
        rows = calibration_indices(len(train), count, ctx.args.seed)
        if len(rows) < count:
            ctx.accelerator.print(
                f"calibration: --calibration_samples {count} > the {len(train)} training examples; all are used."
            )
        self.calibration_examples = len(rows)
        loader = DataLoader(
            train.select(rows), batch_size=ctx.args.per_device_eval_batch_size, collate_fn=collate_examples
        )
        device = next(ctx.teacher.parameters()).device
        fisher = self._needs_fisher()

        def batches():
            for batch in tqdm(loader, desc="calibration", disable=not ctx.accelerator.is_local_main_process):
                inputs = {key: value.to(device) for key, value in model_inputs(batch).items()}
                yield inputs | ({"labels": batch["labels"].to(device)} if fisher else {})

        start = time.perf_counter()
        self._statistics = collect_input_statistics(ctx.teacher, batches(), self.names, fisher=fisher)
        self.seconds["calibration"] = time.perf_counter() - start
        self.calibration_tokens, self.calibration_tokens_per_layer = token_counts(self._statistics)
        self.statistics_bytes = sum(
            sum(t.numel() * t.element_size() for t in (s.gram, s.abs_sum, s.row_fisher) if t is not None)
            for s in self._statistics.values()
        )
        return self._statistics

    def decompositions(self, init: str) -> dict:
        """name -> `LinearDecomposition` of `init` for every factorized layer (computed once per init)."""
        if init not in self._decompositions:
            statistics = self.statistics() if init in DATA_AWARE_INITS else None
            start = time.perf_counter()
            disable = not self.ctx.accelerator.is_local_main_process

            def progress(names):
                return tqdm(names, desc=f"decomposing ({init})", disable=disable)

            self._decompositions[init] = decompose_layers(
                self.ctx.teacher, self.names, init, statistics, self.ctx.sweep.init_alpha, progress, warn=False
            )
            self.seconds[f"decomposition_{init}"] = time.perf_counter() - start
            self.decomposition_bytes[init] = sum(d.nbytes() for d in self._decompositions[init].values())
            self.fallbacks[init] = fallback_summary(self._decompositions[init])
            for line in self.fallbacks[init]:
                self.ctx.accelerator.print(f"{init} init: {line}")
            if self._released and init == self.ctx.sweep.init:
                self._statistics = None  # nothing after the previews needs them once the students' init is done
        return self._decompositions[init]

    def release(self) -> None:
        """Free what the rest of the sweep no longer needs (called after the previews; the budgets' whitened
        spectra are taken before them): every init's decompositions but the students' own, and the statistics
        unless the students' data-aware init still has to be decomposed."""
        self._released = True
        keep = None if self.ctx.sweep.preview_only else self.ctx.sweep.init
        self._decompositions = {init: d for init, d in self._decompositions.items() if init == keep}
        if keep not in DATA_AWARE_INITS or keep in self._decompositions:
            self._statistics = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def spectra(self) -> dict[str, LayerSpectrum]:
        """name -> the layer's whitened spectrum (what `--param_budget` allocates by)."""
        decompositions = self.decompositions("whitened")
        return {
            name: LayerSpectrum(
                linear.in_features, linear.out_features, linear.bias is not None, decompositions[name].singular_values
            )
            for name, linear in ((name, self.ctx.teacher.get_submodule(name)) for name in self.names)
        }

    def rank_mapping(self, layer_ranks: dict[str, int | None]) -> dict[str, int]:
        """Per-layer ranks as the exact-name patterns `from_teacher(rank=...)` takes; a layer kept dense (None) is
        left out, so it matches no pattern and stays dense."""
        return {re.escape(name): rank for name, rank in layer_ranks.items() if rank is not None}

    def record(self, previous: dict | None = None) -> dict:
        """What results.json keeps: examples, tokens, seconds per step, bytes held, fallbacks per init; merged
        into `previous` (an earlier run's record of this sweep, resumed): this run's entries win, and its
        calibration fields only when it gathered calibration itself."""
        previous = previous or {}
        current = self._record()
        if not current["calibration_examples"] and previous.get("calibration_examples"):
            for key in (
                "calibration_examples",
                "calibration_tokens",
                "calibration_tokens_per_layer",
                "statistics_bytes",
            ):
                current[key] = previous.get(key)
        for key in ("seconds", "decomposition_bytes", "fallbacks"):
            current[key] = {**previous.get(key, {}), **current[key]}
        return current

    def _record(self) -> dict:
        return {
            "calibration_examples": self.calibration_examples,
            "calibration_tokens": self.calibration_tokens,
            "calibration_tokens_per_layer": self.calibration_tokens_per_layer,
            "seconds": dict(self.seconds),
            "statistics_bytes": self.statistics_bytes,
            "decomposition_bytes": dict(self.decomposition_bytes),
            "fallbacks": dict(self.fallbacks),
        }

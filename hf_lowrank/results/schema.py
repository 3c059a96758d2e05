"""A sweep's results as typed objects: produced by the sweep's stages, handed in memory to the report, the cards
and the Hub push, and saved as results.json (`SweepResults.save` / `SweepResults.load`, format version
`RESULTS_VERSION`)."""

import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from .io import RESULTS_FORMAT, RESULTS_VERSION, ResultsError, atomic_write_json, read_results_payload


__all__ = [
    "BudgetStudentResult",
    "CNNStudentResult",
    "DatasetInfo",
    "PreviewResult",
    "StudentConfig",
    "StudentResult",
    "SweepResults",
    "TeacherResult",
]


def _json_type(value) -> str:
    """The JSON kind of a parsed value, with its article (a list, an object, ...)."""
    kinds = {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _required(cls) -> list[str]:
    """The fields of `cls` without a default: what every record of it must hold."""
    return [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]


def _check_object(payload, where: str) -> dict:
    if not isinstance(payload, dict):
        raise ResultsError(f"{where} must be a JSON object; got {_json_type(payload)}: {payload!r:.80}.")
    return payload


def _check_list(payload, where: str) -> list:
    if not isinstance(payload, list):
        raise ResultsError(f"{where} must be a JSON list; got {_json_type(payload)}: {payload!r:.80}.")
    return payload


def _build(cls, payload: dict | None, where: str | None = None):
    """`cls` from a JSON mapping: the fields `cls` knows (a file from an older hf_lowrank may lack new ones).

    Raises ResultsError naming `where` (e.g. "ranks[2]") when `payload` is not an object or lacks a field `cls`
    requires."""
    if payload is None:
        return None
    where = where or cls.__name__
    _check_object(payload, where)
    missing = [name for name in _required(cls) if name not in payload]
    if missing:
        raise ResultsError(
            f"{where} ({cls.__name__}) lacks the required field(s) {', '.join(map(repr, missing))}; it has "
            f"{sorted(payload)}."
        )
    known = {f.name for f in fields(cls)}
    return cls(**{key: value for key, value in payload.items() if key in known})


@dataclass
class TeacherResult:
    """The teacher stage: where the teacher came from, how it was fine-tuned, and its test measurements."""

    source: str
    finetune: str  # "full", "lora" or "none"
    model_dir: str
    accuracy: float
    parameters: int
    model_type: str = "vit"  # the teacher's transformers model_type (its family)
    task: str = "image-classification"  # the pipeline task: image-classification or text-classification
    train_seconds: float = 0.0
    examples_per_process: list[int] = field(default_factory=list)
    correct: list[int] = field(default_factory=list)  # (num_test,) 0/1 per test example, in dataset order
    ece: float | None = None
    noise_accuracy: dict[str, float] = field(default_factory=dict)  # str(sigma) -> accuracy
    diagnostics: dict | None = None  # summary of representation diagnostics (final layer, pooled)
    latency: dict | None = None  # inference.LatencyMeasurement.to_dict() (+ measure_seconds); None: not measured


@dataclass
class DatasetInfo:
    name: str
    num_train: int
    num_test: int
    label_names: list[str]
    num_validation: int = 0  # carved from the training split (--validation_split), not in num_train


@dataclass
class StudentConfig:
    """How a rank student was built."""

    rank: int
    bridge: str = "none"  # "none", "lift" or "widelast"
    hidden_size: int | None = None  # a narrow bridged student's width
    exclude_modules: list[str] | None = None
    distillation_mode: str = "geometric"
    teacher: str | None = None
    init: str = "svd"  # how the factors started (models.INITS)
    curve: str = "lockstep"  # trained alone at its rank (lockstep) or truncated from a nested student (nested)
    nested_rank: int | None = None  # nested: the rank of the student it was truncated from
    finetune_steps: int = 0  # nested: optimizer steps it was fine-tuned alone after truncation
    untrained: bool = False  # --ranks auto: saved at initialisation, its preview at the teacher (no distillation)


@dataclass
class StudentResult:
    """One low-rank student (one rank and seed): training outcome and, when done, its test measurements."""

    rank: int
    status: str  # "done" or "failed"
    seed: int
    parameters: int
    compression: float  # teacher parameters / student parameters
    config: StudentConfig
    error: str | None = None
    steps: int = 0
    train_seconds: float = 0.0
    examples_per_process: list[int] = field(default_factory=list)
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    validation_history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, accuracy, loss)
    best_step: int | None = None  # its best validation step (metric_for_best_model), with evaluation
    stopped_step: int | None = None  # early-stopped at this optimizer step
    skipped_steps: int = 0  # optimizer steps skipped by its fp16 loss scaler (gradient overflow), with --fp16
    model_dir: str | None = None
    accuracy: float | None = None
    normalized_accuracy: float | None = None
    correct: list[int] | None = None
    ece: float | None = None
    noise_accuracy: dict[str, float] = field(default_factory=dict)
    diagnostics: dict | None = None
    latency: dict | None = None  # in its inference layout: inference.LatencyMeasurement.to_dict(); None: not measured

    @classmethod
    def from_dict(cls, payload: dict, where: str = "student record") -> "StudentResult":
        """A student record of results.json; ResultsError naming `where` when a required field is missing, or
        `rank` is not an integer."""
        _check_object(payload, where)
        if "rank" not in payload:
            raise ResultsError(f"{where} lacks the required field 'rank'; it has {sorted(payload)}.")
        rank = payload["rank"]
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ResultsError(f"{where} has 'rank' {rank!r}; it must be a positive integer.")
        config = _build(StudentConfig, payload.get("config") or {"rank": rank}, f"{where}.config")
        return _build(cls, {**payload, "config": config}, where)


@dataclass
class CNNStudentResult:
    """One CNN student of the dimensional-collapse comparison."""

    capacity: str
    status: str
    seed: int
    parameters: int  # trainable parameters
    model_dir: str
    error: str | None = None
    accuracy: float | None = None
    normalized_accuracy: float | None = None
    train_seconds: float = 0.0
    ece: float | None = None
    noise_accuracy: dict[str, float] = field(default_factory=dict)
    diagnostics: dict | None = None


@dataclass
class PreviewResult:
    """One rank's student right after initialisation with `init`, before any distillation: its test accuracy."""

    init: str
    rank: int
    parameters: int
    accuracy: float
    normalized_accuracy: float
    correct: list[int] = field(default_factory=list)  # (num_test,) 0/1 per test example


@dataclass
class BudgetStudentResult:
    """A student whose per-layer ranks were allocated within a parameter budget (`--param_budget`), beside the
    uniform-rank student of the same budget (`uniform_rank`, one of the rank students)."""

    budget: float  # as given: a fraction of the dense encoder linears' parameters, or a count
    budget_parameters: int  # the budget as a count of encoder-linear parameters
    status: str
    seed: int
    parameters: int  # the whole student's
    linear_parameters: int  # its encoder linears', factorized or kept dense (<= budget_parameters)
    uniform_rank: int
    uniform_linear_parameters: int
    layer_ranks: dict[str, int | None]  # None: a layer kept dense (its allocation reached its break-even rank)
    compression: float
    error: str | None = None
    steps: int = 0
    train_seconds: float = 0.0
    model_dir: str | None = None
    accuracy: float | None = None
    normalized_accuracy: float | None = None
    correct: list[int] | None = None
    init_accuracy: float | None = None  # right after initialisation, before distillation
    latency: dict | None = None  # in its inference layout: inference.LatencyMeasurement.to_dict(); None: not measured


@dataclass
class SweepResults:
    """Everything a sweep measured. `config` is the sweep's fingerprint (what a resume must match)."""

    config: dict
    hf_lowrank_version: str
    command: str | None = None
    teacher: TeacherResult | None = None
    dataset: DatasetInfo | None = None
    ranks: list[StudentResult] = field(default_factory=list)
    cnn_students: list[CNNStudentResult] = field(default_factory=list)
    previews: list[PreviewResult] = field(default_factory=list)
    budget_students: list[BudgetStudentResult] = field(default_factory=list)
    factorization: dict | None = None  # calibration and decomposition: samples, seconds, bytes, fallbacks
    nested: list[StudentResult] = field(default_factory=list)  # --curve both: the nested curve's students
    nested_training: dict = field(default_factory=dict)  # str(seed) -> the nested run: steps, seconds, schedule
    stage_seconds: dict = field(default_factory=dict)  # "preview", "lockstep-seed-0", "nested-seed-0": wall seconds
    # --ranks auto: every rank the search chose, in order: {"rank", "round", "target", "reason"} (round 0: the grid)
    rank_search: list[dict] = field(default_factory=list)

    @property
    def primary_seed(self) -> int:
        return self.config["training"]["seed"]

    @property
    def distillation_mode(self) -> str:
        return self.config["training"]["distillation_mode"]

    @property
    def init(self) -> str:
        """How the trained students' factors started (`--init`, resolved); "svd" for a sweep that did not record it."""
        return self.config.get("sweep", {}).get("init", "svd")

    @property
    def student_bridge(self) -> str:
        """The students' bridge (`--student_bridge`: none, lift or widelast); "none" where it was not recorded."""
        return self.config.get("sweep", {}).get("student_bridge", "none")

    @property
    def num_processes(self) -> int:
        """How many processes trained the students (1 for a sweep that did not record it)."""
        return self.config.get("environment", {}).get("num_processes", 1)

    @property
    def distillation(self) -> str:
        """The distillation loss in words, as report.md and the cards name it: the mode with its settings (for the
        geometric mode the tokens its block terms count and the scale of each block's MSE; a sweep recorded before
        those flags existed counted every token, unscaled) and the added cross-entropy, if any."""
        training = self.config["training"]
        mode = training["distillation_mode"]
        if mode == "geometric":
            tokens = {"attended": "the attended tokens", "all": "every token, padding included"}
            scales = {"none": "plain MSE", "block": "MSE scaled per block output", "channel": "MSE scaled per channel"}
            token_text = tokens[training.get("feature_tokens", "all")]
            scale_text = scales[training.get("feature_normalization", "none")]
            text = (
                f"geometric (MSE + (1 - cosine) on every block's attention and MLP outputs, over {token_text}, "
                f"{scale_text}; and on the logits)"
            )
        elif mode == "logits":
            text = "logits (MSE + (1 - cosine) on the logits)"
        else:
            text = f"kd (KL divergence of the logits at temperature {training.get('temperature', 1.0):g}, times T^2)"
        weight = training.get("ce_weight", 0.0)
        return text + (f", plus {weight:g} x cross-entropy on the labels" if weight else "")

    @property
    def seeds(self) -> list[int]:
        return sorted({record.seed for record in self.ranks})

    def done_students(self, seed: int | None = None) -> list[StudentResult]:
        """Finished students (of `seed` only, when given), by seed then rank."""
        return [r for r in self.ranks if r.status == "done" and (seed is None or r.seed == seed)]

    def record_student(self, record: StudentResult) -> None:
        """Add `record`, replacing an earlier one of the same rank and seed."""
        self.ranks = [r for r in self.ranks if (r.rank, r.seed) != (record.rank, record.seed)] + [record]
        self.ranks.sort(key=lambda r: (r.seed, r.rank))

    def record_cnn_student(self, record: CNNStudentResult) -> None:
        self.cnn_students = [r for r in self.cnn_students if r.capacity != record.capacity] + [record]

    def record_nested_student(self, record: StudentResult) -> None:
        """Add a nested curve's student (`--curve both`), replacing an earlier one of the same rank and seed."""
        self.nested = [r for r in self.nested if (r.rank, r.seed) != (record.rank, record.seed)] + [record]
        self.nested.sort(key=lambda r: (r.seed, r.rank))

    def record_preview(self, record: PreviewResult) -> None:
        """Add `record`, replacing an earlier one of the same init and rank."""
        self.previews = [p for p in self.previews if (p.init, p.rank) != (record.init, record.rank)] + [record]
        self.previews.sort(key=lambda p: (p.init, p.rank))

    def record_budget_student(self, record: BudgetStudentResult) -> None:
        """Add `record`, replacing an earlier one of the same budget and seed."""
        key = (record.budget, record.seed)
        self.budget_students = [b for b in self.budget_students if (b.budget, b.seed) != key] + [record]
        self.budget_students.sort(key=lambda b: (b.seed, b.budget))

    def to_dict(self) -> dict:
        return {"format": RESULTS_FORMAT, "version": RESULTS_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, payload: dict) -> "SweepResults":
        """The typed results of a results.json payload. Raises ResultsError naming the field when the payload is
        not an object, lacks "config" or "ranks", or holds a record without a required field."""
        _check_object(payload, "the results")
        missing = [name for name in ("config", "ranks") if name not in payload]
        if missing:
            raise ResultsError(
                f"the results lack the required field(s) {', '.join(map(repr, missing))}; they have {sorted(payload)}."
            )
        ranks = _check_list(payload["ranks"], "'ranks'")
        cnn_students = _check_list(payload.get("cnn_students", []), "'cnn_students'")
        previews = _check_list(payload.get("previews", []), "'previews'")
        budget_students = _check_list(payload.get("budget_students", []), "'budget_students'")
        nested = _check_list(payload.get("nested", []), "'nested'")
        return cls(
            config=_check_object(payload["config"], "'config'"),
            hf_lowrank_version=payload.get("hf_lowrank_version", "unknown"),
            command=payload.get("command"),
            teacher=_build(TeacherResult, payload.get("teacher"), "'teacher'"),
            dataset=_build(DatasetInfo, payload.get("dataset"), "'dataset'"),
            ranks=[StudentResult.from_dict(r, f"ranks[{i}]") for i, r in enumerate(ranks)],
            cnn_students=[_build(CNNStudentResult, r, f"cnn_students[{i}]") for i, r in enumerate(cnn_students)],
            previews=[_build(PreviewResult, r, f"previews[{i}]") for i, r in enumerate(previews)],
            budget_students=[
                _build(BudgetStudentResult, r, f"budget_students[{i}]") for i, r in enumerate(budget_students)
            ],
            factorization=payload.get("factorization"),
            nested=[StudentResult.from_dict(r, f"nested[{i}]") for i, r in enumerate(nested)],
            nested_training=payload.get("nested_training") or {},
            stage_seconds=payload.get("stage_seconds") or {},
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write results.json atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SweepResults":
        """Read a results.json (a file, or a sweep directory holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "results.json"
        payload = read_results_payload(path)
        try:
            return cls.from_dict(payload)
        except ResultsError as error:
            raise ResultsError(f"{path} is not a valid results file (version {RESULTS_VERSION}): {error}") from None
        except (KeyError, TypeError, AttributeError) as error:
            raise ResultsError(
                f"{path} does not have the layout of results version {RESULTS_VERSION}: {error!r}."
            ) from error

"""What the sweep needs to know about a teacher's family: its modality (image or text), its Auto classes and
processor, its blocks (the table in `models.architectures`, or the `--block_*` flags), and the student it gets."""

import json
from pathlib import Path

from torch import nn
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
)

from ..models import (
    BLOCK_LAYOUTS,
    BlockLayout,
    LowRankForImageClassification,
    LowRankForSequenceClassification,
    find_blocks,
)
from .arguments import SweepArguments, SweepError


__all__ = [
    "TEXT_MODEL_TYPES",
    "load_processor",
    "student_class",
    "sweep_layout",
    "task_auto_class",
    "teacher_family_problem",
    "teacher_modality",
    "encoder_linears",
    "sentence_transformers_pooling",
    "text_length_limit",
    "TASKS",
    "STUDENT_MODEL_TYPES",
]

TEXT_MODEL_TYPES = ("bert", "roberta", "distilbert")
TASKS = {"image": "image-classification", "text": "text-classification"}
# hf_lowrank's own model types are students, not teachers.
STUDENT_MODEL_TYPES = ("factorized_vit", "bridged_vit", "lowrank")


def teacher_modality(config: PretrainedConfig) -> str:
    """ "text" for a text family (the table's BERT-likes, or any config with a vocabulary and no image channels),
    else "image"."""
    if config.model_type in TEXT_MODEL_TYPES:
        return "text"
    if config.model_type in BLOCK_LAYOUTS:
        return "image"
    return "text" if hasattr(config, "vocab_size") and not hasattr(config, "num_channels") else "image"


def task_auto_class(modality: str):
    """The Auto class of a teacher (and of its reloaded copy) of `modality`."""
    return AutoModelForSequenceClassification if modality == "text" else AutoModelForImageClassification


def student_class(modality: str):
    """The generic student of a teacher of `modality`."""
    return LowRankForSequenceClassification if modality == "text" else LowRankForImageClassification


def sweep_layout(sweep: SweepArguments) -> BlockLayout | None:
    """The `BlockLayout` the `--block_*` flags give by hand (None: the table's, by model_type)."""
    if sweep.block_pattern is None:
        return None
    return BlockLayout(sweep.block_pattern, sweep.block_attention_output, sweep.block_mlp_output)


def teacher_family_problem(config: PretrainedConfig, sweep: SweepArguments) -> str | None:
    """Why the sweep cannot distil a teacher with `config` (None: it can)."""
    model_type = config.model_type
    if model_type in STUDENT_MODEL_TYPES:
        return f"is an hf_lowrank student (model_type {model_type!r}), not a teacher: give the model it came from"
    if model_type not in BLOCK_LAYOUTS and sweep.block_pattern is None:
        supported = sorted(set(BLOCK_LAYOUTS) - set(STUDENT_MODEL_TYPES))
        return (
            f"has model_type {model_type!r}, which hf_lowrank's block table does not know; supported: {supported}. "
            "For another family, name its blocks by hand: --block_pattern <regex of the block modules' full names> "
            "--block_mlp_output <module in a block> [--block_attention_output <module in a block>]"
        )
    if sweep.student_bridge != "none" and model_type != "vit":
        return f"is a {model_type} model: --student_bridge {sweep.student_bridge} builds ViT students only"
    if sweep.cnn_students and model_type != "vit":
        return f"is a {model_type} model: --cnn_students distil a ViT teacher's CLS embedding only"
    return None


def load_processor(name_or_path: str | Path, modality: str, argument: str = "--teacher"):
    """The tokenizer (text) or image processor (image) saved beside a teacher; a SweepError saying which is missing."""
    if modality == "text":
        kind, loader, teacher, saved = "tokenizer", AutoTokenizer, "A text teacher", "tokenizer"
    else:
        kind, loader, teacher, saved = "image processor", AutoImageProcessor, "An image teacher", "image_processor"
    advice = f"{teacher} needs its {kind} saved beside it ({saved}.save_pretrained(<teacher dir>))."
    try:
        processor = loader.from_pretrained(str(name_or_path))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SweepError(
            f"{argument} {str(name_or_path)!r}: cannot load its {kind} ({type(error).__name__}: {error}). {advice}"
        ) from error
    # transformers 5 builds a tokenizer of the config's family with no vocabulary when no tokenizer file is there.
    if modality == "text" and len(processor) <= len(set(processor.all_special_tokens)):
        raise SweepError(
            f"{argument} {str(name_or_path)!r}: cannot load its tokenizer (no vocabulary file found: what loads holds "
            f"only the {len(processor)} special tokens). {advice}"
        )
    return processor


def text_length_limit(config: PretrainedConfig, requested: int) -> int:
    """Tokens per example a text teacher can take: `requested` (--max_seq_length), at most its position table
    (`max_position_embeddings`; RoBERTa's positions start after its padding index, so two fewer)."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return requested
    if config.model_type == "roberta":
        positions -= (config.pad_token_id or 0) + 1
    return min(requested, positions)


def sentence_transformers_pooling(name_or_path: str | Path) -> str | None:
    """The pooling a local sentence-transformers checkpoint was trained with (``"mean"``, ``"cls"``, ``"max"``, ...:
    its Pooling module's config), or None when `name_or_path` is not one (or not local)."""
    directory = Path(name_or_path)
    try:
        modules = json.loads((directory / "modules.json").read_text())
        pooling = next(m for m in modules if str(m.get("type", "")).endswith("Pooling"))
        config = json.loads((directory / pooling.get("path", "") / "config.json").read_text())
    except (OSError, ValueError, StopIteration, AttributeError):
        return None
    modes = [
        key[len("pooling_mode_") :].removesuffix("_tokens").removesuffix("_token")
        for key, on in config.items()
        if key.startswith("pooling_mode_") and on is True
    ]
    return " + ".join(modes) or None


def encoder_linears(teacher: nn.Module, layout: BlockLayout | None = None) -> dict[str, nn.Linear]:
    """Every `nn.Linear` inside the teacher's blocks (the layers the students factorize), by full name, in order."""
    return {
        f"{block_name}.{name}": module
        for block_name, block in find_blocks(teacher, layout)
        for name, module in block.named_modules()
        if isinstance(module, nn.Linear)
    }

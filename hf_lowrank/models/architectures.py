"""Where each transformers family keeps its blocks: the table the generic students and geometric distillation read
(as peft keeps its target-module mappings per model type).

A `BlockLayout` names, per `model_type`, the block modules (in forward order) and, inside a block, the module whose
output is the block's attention output and the one whose output is its MLP output (both before the residual add).
The encoder linears to factorize are the `nn.Linear` layers inside the blocks: embeddings, poolers, heads, patch
merging and classifiers stay dense. A model type not in the table takes a `BlockLayout` given by hand.

Only imports torch and the standard library (the `trust_remote_code` unit).
"""

import re
from dataclasses import dataclass

from torch import nn


__all__ = [
    "BLOCK_LAYOUTS",
    "BlockLayout",
    "block_layout",
    "block_output_modules",
    "find_blocks",
    "layout_of",
]


@dataclass(frozen=True)
class BlockLayout:
    """Where a family's blocks are.

    Attributes:
        blocks: a regular expression the full name of every block module matches (`re.fullmatch`).
        attention_output: name, relative to a block, of the module whose output is the attention output (None for a
            family without attention, such as ConvNeXt).
        mlp_output: name, relative to a block, of the module whose output is the MLP output.
    """

    blocks: str
    attention_output: str | None
    mlp_output: str


_VIT_LIKE = {"attention_output": "attention.o_proj", "mlp_output": "mlp.fc2"}
_CLIP_LIKE = {"attention_output": "self_attn.out_proj", "mlp_output": "mlp.fc2"}
_BERT_LIKE = {"attention_output": "attention.output.dense", "mlp_output": "output.dense"}

BLOCK_LAYOUTS: dict[str, BlockLayout] = {
    "vit": BlockLayout(r"(.+\.)?layers\.\d+", **_VIT_LIKE),
    "deit": BlockLayout(r"(.+\.)?layers\.\d+", **_VIT_LIKE),
    "beit": BlockLayout(r"(.+\.)?layers\.\d+", **_VIT_LIKE),
    "dinov2": BlockLayout(r"(.+\.)?encoder\.layer\.\d+", **_VIT_LIKE),
    "swin": BlockLayout(r"(.+\.)?encoder\.layers\.\d+\.blocks\.\d+", **_VIT_LIKE),
    "convnext": BlockLayout(r"(.+\.)?encoder\.stages\.\d+\.layers\.\d+", None, "pwconv2"),
    "clip": BlockLayout(r"(.+\.)?encoder\.layers\.\d+", **_CLIP_LIKE),
    "siglip": BlockLayout(r"(.+\.)?encoder\.layers\.\d+", **_CLIP_LIKE),
    "bert": BlockLayout(r"(.+\.)?encoder\.layer\.\d+", **_BERT_LIKE),
    "roberta": BlockLayout(r"(.+\.)?encoder\.layer\.\d+", **_BERT_LIKE),
    "distilbert": BlockLayout(r"(.+\.)?transformer\.layer\.\d+", "attention.out_lin", "ffn.lin2"),
}

_MANUAL = (
    "pass a BlockLayout(blocks=<regex of the block modules' names>, attention_output=<module in a block>, "
    "mlp_output=<module in a block>) as layout="
)


def block_layout(model_type: str) -> BlockLayout:
    """The table's `BlockLayout` of `model_type`; a ValueError listing the supported types and the manual route."""
    if model_type not in BLOCK_LAYOUTS:
        raise ValueError(
            f"model_type {model_type!r} is not in hf_lowrank's block table; supported: {sorted(BLOCK_LAYOUTS)}. "
            f"For another family, {_MANUAL}."
        )
    return BLOCK_LAYOUTS[model_type]


def layout_of(model: nn.Module, layout: BlockLayout | None = None) -> BlockLayout:
    """`layout` if given, else the one `model.config` records (a LowRank student), else the table's entry for
    `model.config.model_type`."""
    if layout is not None:
        return layout
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} has no config to read a model_type from; {_MANUAL}.")
    recorded = getattr(config, "block_layout", None)  # hf_lowrank's students record their base family's layout
    if isinstance(recorded, dict):
        return BlockLayout(**recorded)
    return block_layout(config.model_type)


def find_blocks(model: nn.Module, layout: BlockLayout | None = None) -> list[tuple[str, nn.Module]]:
    """The blocks of `model` as (name, module), in forward order (module registration order). `layout` defaults
    to the table's entry for `model.config.model_type`. A layout that matches no module is an error listing a few
    module names, to write the pattern from."""
    layout = layout_of(model, layout)
    blocks = [(name, module) for name, module in model.named_modules() if re.fullmatch(layout.blocks, name)]
    if not blocks:
        names = [name for name, _ in model.named_modules() if name][:12]
        raise ValueError(
            f"the block pattern {layout.blocks!r} matches no module of {type(model).__name__}; its modules begin "
            f"{names}."
        )
    return blocks


def block_output_modules(model: nn.Module, layout: BlockLayout | None = None) -> list[nn.Module]:
    """Per block, in order, the attention-output module (when the family has one) then the MLP-output module:
    the modules whose outputs geometric distillation aligns, block l of the student against block l of the
    teacher."""
    layout = layout_of(model, layout)
    outputs = []
    for name, block in find_blocks(model, layout):
        for relative in (layout.attention_output, layout.mlp_output):
            if relative is None:
                continue
            try:
                outputs.append(block.get_submodule(relative))
            except AttributeError:
                raise ValueError(f"block {name} of {type(model).__name__} has no module {relative!r}.") from None
    return outputs

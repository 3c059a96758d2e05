"""PyTorch BridgedViT: Lift and WideLast students (encoding-mismatch paper), dense or factorized.

Relative imports stay flat for `trust_remote_code` loading, as in `modeling_factorized_vit.py`.
"""

import os
from dataclasses import dataclass

import torch
from torch import nn
from transformers import ViTConfig, ViTForImageClassification
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.models.vit.modeling_vit import ViTEmbeddings, ViTLayer, ViTPreTrainedModel
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .checkpoint_loading import FactorizedCheckpointMixin
from .configuration_bridged_vit import BridgedViTConfig
from .factor_init import init_factors
from .factorize import factorize_model
from .factorized_linear import as_integer
from .pretrained_source import load_vit_teacher
from .teacher_weights import copy_teacher_weights


__all__ = ["BridgedViTForImageClassification", "BridgedViTOutput", "BridgedViTPreTrainedModel"]


@dataclass
class BridgedViTOutput(ImageClassifierOutput):
    """`ImageClassifierOutput` plus `bridged_tokens` `(batch, tokens, teacher_hidden_size)`: the final, normalised
    tokens at the teacher's width that feature distillation aligns with the teacher's."""

    bridged_tokens: torch.FloatTensor | None = None


class BridgedViTPreTrainedModel(FactorizedCheckpointMixin, ViTPreTrainedModel):
    """ViT's weight init (a random `FactorizedLinear` gets `up @ down` entries of std `initializer_range`) and the
    factorized students' loading, with the BridgedViT config. The model has no base-model wrapper: its modules sit
    at the top level, as the blocks of a `ViTModel` do."""

    config: BridgedViTConfig
    config_class = BridgedViTConfig
    base_model_prefix = ""
    _no_split_modules = ["ViTEmbeddings", "ViTLayer"]
    checkpoint_conversion_model = "ViTModel"  # dense ViT checkpoints may keep transformers' older key layout
    distils_final_tokens = True  # distilled on the teacher's final tokens (and logits), not block by block

    @torch.no_grad()
    def _init_weights(self, module):
        if not init_factors(module, self.config.initializer_range):
            super()._init_weights(module)


class BridgedViTForImageClassification(BridgedViTPreTrainedModel):
    """A narrow (or factorized) ViT whose final tokens reach the teacher's width through Lift or WideLast; the
    classifier reads the CLS token at the teacher's width.

    The blocks are transformers' `ViTLayer`s (the WideLast block too), so attention backends, gradient
    checkpointing and output capture (`output_hidden_states`, also as layer indices; `output_attentions`) are
    ViT's. Hidden states: the embeddings, then the output of every block (the WideLast block's at the teacher's
    width)."""

    def __init__(self, config: BridgedViTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        narrow_blocks = config.num_hidden_layers - (config.bridge == "widelast")
        self.embeddings = ViTEmbeddings(config)
        self.layers = nn.ModuleList([ViTLayer(config) for _ in range(narrow_blocks)])
        if config.rank is not None:
            factorize_model(self, config.rank, target_modules=["layers"], exclude_modules=(), init="random")
        self.bridge = nn.Linear(config.hidden_size, config.teacher_hidden_size)
        if config.bridge == "lift":
            self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        else:
            self.wide_layer = ViTLayer(self._wide_config(config))
            self.layernorm = nn.LayerNorm(config.teacher_hidden_size, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(config.teacher_hidden_size, config.num_labels)
        self.post_init()

    @staticmethod
    def _wide_config(config: BridgedViTConfig) -> ViTConfig:
        """The WideLast block's geometry; its attention backend follows `config` (see `forward`)."""
        wide = ViTConfig(
            hidden_size=config.teacher_hidden_size,
            num_attention_heads=config.teacher_num_attention_heads,
            intermediate_size=config.teacher_intermediate_size,
            hidden_act=config.hidden_act,
            layer_norm_eps=config.layer_norm_eps,
            qkv_bias=config.qkv_bias,
            attention_probs_dropout_prob=config.attention_probs_dropout_prob,
            hidden_dropout_prob=config.hidden_dropout_prob,
        )
        wide._attn_implementation = config._attn_implementation
        return wide

    def get_input_embeddings(self):
        return self.embeddings.patch_embeddings

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BridgedViTOutput:
        expected_dtype = self.embeddings.patch_embeddings.projection.weight.dtype
        if pixel_values.dtype != expected_dtype:
            pixel_values = pixel_values.to(expected_dtype)
        hidden = self.embeddings(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)  # (B, N, D_s)
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in self.layers:
            hidden = layer(hidden, mask, **kwargs)  # (batch, tokens, hidden_size)
        if self.config.bridge == "lift":
            tokens = self.bridge(self.layernorm(hidden))  # (batch, tokens, teacher_hidden_size)
        else:
            # `set_attn_implementation` changes `self.config`; the wide block reads its own config.
            self.wide_layer.attention.config._attn_implementation = self.config._attn_implementation
            hidden = self.wide_layer(self.bridge(hidden), mask, **kwargs)  # (batch, tokens, teacher_hidden_size)
            tokens = self.layernorm(hidden)
        logits = self.classifier(tokens[:, 0])  # (batch, num_labels)
        loss = None if labels is None else self.loss_function(labels, logits, self.config, **kwargs)
        return BridgedViTOutput(loss=loss, logits=logits, bridged_tokens=tokens)

    @classmethod
    @torch.no_grad()
    def from_teacher(
        cls,
        teacher: ViTForImageClassification | str | os.PathLike,
        bridge: str = "lift",
        hidden_size: int | None = None,
        num_attention_heads: int | None = None,
        intermediate_size: int | None = None,
        rank: int | None = None,
        **from_pretrained_kwargs,
    ) -> "BridgedViTForImageClassification":
        """A student of `teacher` with `bridge`.

        At the teacher's width (`hidden_size` unset) the student starts from the teacher: embeddings, blocks (SVD
        of each weight when `rank` is set), norms and classifier are copied, the bridge is the identity, and the
        WideLast block is the teacher's last block, so before training it computes the teacher's function (exactly,
        when no layer is factorized). A narrower student starts from random weights, as a DeiT-Tiny does against a
        CaiT-S24 teacher.

        `teacher` may be a local directory or a Hub id, loaded with `from_pretrained_kwargs` (see
        `load_vit_teacher`: a checkpoint of another family is refused). `rank` may be any integer type.
        """
        if isinstance(teacher, (str, os.PathLike)):
            teacher = load_vit_teacher(teacher, **from_pretrained_kwargs)
        if not isinstance(teacher, ViTForImageClassification):
            raise TypeError(f"from_teacher needs a ViTForImageClassification teacher, got {type(teacher).__name__}.")
        t = teacher.config
        config_dict = {k: v for k, v in t.to_dict().items() if k not in ("model_type", "architectures", "auto_map")}
        config_dict.pop("transformers_version", None)
        config_dict.update(
            bridge=bridge,
            rank=rank if as_integer(rank) is None else as_integer(rank),
            teacher_hidden_size=t.hidden_size,
            teacher_num_attention_heads=t.num_attention_heads,
            teacher_intermediate_size=t.intermediate_size,
            hidden_size=hidden_size or t.hidden_size,
            num_attention_heads=num_attention_heads or t.num_attention_heads,
            intermediate_size=intermediate_size or (t.intermediate_size if hidden_size is None else 4 * hidden_size),
        )
        weight = next(teacher.parameters())
        student = cls(BridgedViTConfig(**config_dict)).to(device=weight.device, dtype=weight.dtype)
        if hidden_size is None or hidden_size == t.hidden_size:
            student._copy_teacher(teacher)
        return student.eval()

    def _copy_teacher(self, teacher: ViTForImageClassification) -> None:
        """Teacher weights into a student of the teacher's width (SVD for factorized layers), the bridge set to
        the identity, and the WideLast block taken from the teacher's last block."""
        prefixes = {
            "embeddings": "vit.embeddings",
            "layers": "vit.layers",
            "layernorm": "vit.layernorm",
            "classifier": "classifier",
        }
        if self.config.bridge == "widelast":
            prefixes["wide_layer"] = f"vit.layers.{len(teacher.vit.layers) - 1}"
        copy_teacher_weights(self, teacher, prefixes)
        nn.init.eye_(self.bridge.weight)
        nn.init.zeros_(self.bridge.bias)

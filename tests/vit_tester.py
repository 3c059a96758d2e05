"""Tiny ViT geometry for tests, as transformers' own ViT tests do: odd sizes catch shape bugs."""

import torch
from transformers import ViTConfig, ViTForImageClassification

from hf_lowrank import FactorizedViTConfig


class TinyViTTester:
    hidden_size = 18  # 3 heads of 6
    num_attention_heads = 3
    intermediate_size = 37
    num_hidden_layers = 2
    image_size = 12
    patch_size = 4  # 9 patches + CLS = 10 tokens
    num_channels = 3
    num_labels = 7
    batch_size = 5

    def config_kwargs(self, **overrides) -> dict:
        kwargs = dict(
            hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=self.num_channels,
            num_labels=self.num_labels,
            id2label={i: f"digit-{i}" for i in range(self.num_labels)},
            label2id={f"digit-{i}": i for i in range(self.num_labels)},
        )
        kwargs.update(overrides)
        return kwargs

    def get_config(self, **overrides) -> ViTConfig:
        return ViTConfig(**self.config_kwargs(**overrides))

    def get_factorized_config(self, **overrides) -> FactorizedViTConfig:
        return FactorizedViTConfig(**self.config_kwargs(**overrides))

    def create_teacher(self, seed: int = 0) -> ViTForImageClassification:
        torch.manual_seed(seed)
        return ViTForImageClassification(self.get_config()).eval()

    def pixel_values(self, seed: int = 1) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(self.batch_size, self.num_channels, self.image_size, self.image_size, generator=generator)

    @property
    def encoder_linear_names(self) -> list[str]:
        names = ["attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj", "mlp.fc1", "mlp.fc2"]
        return [f"layers.{i}.{name}" for i in range(self.num_hidden_layers) for name in names]

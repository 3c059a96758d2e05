"""CNN students of the dimensional-collapse paper: small convolutional networks from transformers' own ResNet
classes, at three capacities, trained by cosine distillation of the teacher's embedding.

The student maps its pooled ResNet features to the teacher's embedding width (the teacher's final, normalised CLS
token) and is trained on `1 - cos(student, teacher)`. It classifies with the teacher's classifier, frozen, applied to
its embedding rescaled to the teacher's mean embedding norm (cosine training leaves the scale free).
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import ResNetConfig, ResNetModel, ViTForImageClassification
from transformers.modeling_outputs import ImageClassifierOutput

from .teacher_weights import copy_teacher_weights


__all__ = ["CNN_CAPACITIES", "CNNEmbeddingStudent", "CNNStudentOutput"]

# Three capacities, smallest to largest (parameters depend on the teacher's width through the projection).
CNN_CAPACITIES = {
    "small": {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1]},
    "medium": {"embedding_size": 32, "hidden_sizes": [32, 64, 128], "depths": [1, 1, 1]},
    "large": {"embedding_size": 64, "hidden_sizes": [64, 128, 256, 512], "depths": [2, 2, 2, 2]},
}


@dataclass
class CNNStudentOutput(ImageClassifierOutput):
    """Logits, ResNet hidden states `(batch, channels, h, w)`, and `pooler_output`: the student's embedding
    `(batch, teacher_dim)`, the representation cosine distillation aligns (and the diagnostics measure)."""

    pooler_output: torch.FloatTensor | None = None
    student_embedding: torch.FloatTensor | None = None


class CNNEmbeddingStudent(nn.Module):
    distils_final_tokens = True  # distilled on the teacher's final CLS embedding (and logits), not block by block

    def __init__(self, config: ResNetConfig, teacher_dim: int, num_labels: int, embedding_norm: float = 1.0):
        super().__init__()
        self.config = config
        self.backbone = ResNetModel(config)
        self.project = nn.Linear(config.hidden_sizes[-1], teacher_dim)
        self.classifier = nn.Linear(teacher_dim, num_labels)  # the teacher's, frozen
        self.classifier.requires_grad_(False)
        self.register_buffer("embedding_norm", torch.tensor(float(embedding_norm)))

    def forward(self, pixel_values: torch.Tensor, labels=None, output_hidden_states: bool | None = None, **kwargs):
        outputs = self.backbone(pixel_values=pixel_values, output_hidden_states=output_hidden_states)
        embedding = self.project(outputs.pooler_output.flatten(1))  # (batch, teacher_dim)
        rescaled = nn.functional.normalize(embedding, dim=-1) * self.embedding_norm
        logits = self.classifier(rescaled)  # (batch, num_labels)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return CNNStudentOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            pooler_output=embedding,
            student_embedding=embedding,
        )

    @classmethod
    @torch.no_grad()
    def from_teacher(cls, teacher: ViTForImageClassification, capacity: str, pixel_values: torch.Tensor):
        """A CNN student of `capacity` for `teacher`, with the teacher's classifier and its mean embedding norm
        measured on `pixel_values` (a batch of training images)."""
        if capacity not in CNN_CAPACITIES:
            raise ValueError(f"capacity must be one of {list(CNN_CAPACITIES)}, got {capacity!r}.")
        t = teacher.config
        config = ResNetConfig(num_channels=t.num_channels, layer_type="basic", **CNN_CAPACITIES[capacity])
        teacher_tokens = teacher.vit(pixel_values=pixel_values).last_hidden_state[:, 0]  # (batch, dim)
        student = cls(config, t.hidden_size, t.num_labels, teacher_tokens.norm(dim=-1).mean().item())
        copy_teacher_weights(student, teacher, {"classifier": "classifier"})  # the rest stays randomly initialised
        return student.to(next(teacher.parameters()).device)

    def save(self, directory: str | os.PathLike) -> None:
        """safetensors weights and a JSON description (no pickle)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_model(self, str(directory / "model.safetensors"))
        meta = {
            "resnet_config": self.config.to_dict(),
            "teacher_dim": self.project.out_features,
            "num_labels": self.classifier.out_features,
        }
        (directory / "cnn_student.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "CNNEmbeddingStudent":
        directory = Path(directory)
        meta = json.loads((directory / "cnn_student.json").read_text())
        student = cls(ResNetConfig.from_dict(meta["resnet_config"]), meta["teacher_dim"], meta["num_labels"])
        load_model(student, str(directory / "model.safetensors"))
        return student.eval()

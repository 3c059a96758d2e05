"""One student class for every family: what differs by family or student kind is on the classes (truncation,
distillation targets) or in a table (card tags, the factorized layers' names), not in branches on `model_type`."""

import pytest
import torch
from test_report import make_results
from torch import nn

from hf_lowrank import FactorizedLinear, LowRankForImageClassification
from hf_lowrank.distillation import is_bridged
from hf_lowrank.hub.cards import FAMILY_TAGS, TAGS, card_tags
from hf_lowrank.models import BridgedViTForImageClassification, CNNEmbeddingStudent, truncated_student
from hf_lowrank.results import SweepResults

from families import example_inputs, tiny_classifier


def test_whether_a_student_distils_final_tokens_is_its_class_attribute():
    teacher = tiny_classifier("vit")
    assert not is_bridged(LowRankForImageClassification.from_teacher(teacher, rank=2))
    assert BridgedViTForImageClassification.distils_final_tokens and CNNEmbeddingStudent.distils_final_tokens

    class FinalTokens(nn.Module):  # any student class saying so is distilled on the final tokens
        distils_final_tokens = True

    assert is_bridged(FinalTokens()) and not is_bridged(nn.Linear(2, 2))


def test_a_student_class_records_its_own_truncation():
    teacher = tiny_classifier("vit")
    student = LowRankForImageClassification.from_teacher(teacher, rank=5)
    cut = truncated_student(student, 2)
    layers = {n.removeprefix("model."): m.rank for n, m in cut.named_modules() if isinstance(m, FactorizedLinear)}
    assert cut.config.factorized_layers == layers and set(layers.values()) == {2}
    inputs = example_inputs(teacher)
    with torch.no_grad():  # the recorded config rebuilds the same student
        rebuilt = LowRankForImageClassification(cut.config)
        rebuilt.load_state_dict(cut.state_dict())
        assert torch.equal(rebuilt(**inputs).logits, cut(**inputs).logits)

    class Unrecorded(nn.Module):  # factors, but no way to say so in a config
        def __init__(self):
            super().__init__()
            self.layer = FactorizedLinear(4, 3, rank=2)

    with pytest.raises(ValueError, match=r"students with `record_truncation` .* got Unrecorded"):
        truncated_student(Unrecorded(), 1)


@pytest.mark.parametrize(
    ("model_type", "bridge", "expected"),
    [
        ("vit", "none", [*TAGS, "image-classification", "vit", *FAMILY_TAGS["vit"], "lowrank"]),
        ("vit", "lift", [*TAGS, "image-classification", "vit", *FAMILY_TAGS["vit"], "bridged-vit"]),
        ("dinov2", "none", [*TAGS, "image-classification", "dinov2", "lowrank"]),
    ],
)
def test_card_tags_come_from_the_family_table_and_the_student_class(model_type, bridge, expected):
    payload = make_results({1: 0.5, 2: 0.8})
    payload["teacher"].update(model_type=model_type, task="image-classification")
    payload["config"]["sweep"] = {"student_bridge": bridge}
    assert card_tags(SweepResults.from_dict(payload)) == expected


def test_the_public_build_student_builds_the_lowrank_student_of_every_family():
    """`hf_lowrank.sweep.build_student(teacher, rank, sweep)` keeps its signature; a ViT teacher gets LowRank too."""
    from hf_lowrank.sweep import SweepArguments, build_student

    for model_type in ("vit", "bert"):
        teacher = tiny_classifier(model_type)
        student = build_student(teacher, 2, SweepArguments())
        assert type(student).__name__.startswith("LowRankFor")
        assert set(student.config.factorized_layers.values()) == {2}

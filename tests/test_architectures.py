"""The per-model_type block table: every listed family's blocks and block outputs are found, its encoder linears
(and only those) are factorized, and at full rank the factorized model reproduces the teacher's logits."""

import re

import pytest
import torch
from torch import nn
from transformers import (
    BeitConfig,
    BeitForImageClassification,
    BertConfig,
    BertForSequenceClassification,
    CLIPConfig,
    CLIPForImageClassification,
    ConvNextConfig,
    ConvNextForImageClassification,
    DeiTConfig,
    DeiTForImageClassification,
    Dinov2Config,
    Dinov2ForImageClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    SiglipConfig,
    SiglipForImageClassification,
    SwinConfig,
    SwinForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)

from hf_lowrank import FactorizedLinear, factorize_model
from hf_lowrank.models import BLOCK_LAYOUTS, BlockLayout, block_layout, block_output_modules, find_blocks


# Odd sizes catch shape bugs: width 12, 3 heads, MLP 20, 2 blocks, 3 labels.
_TRANSFORMER = dict(hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20)
_IMAGE = dict(image_size=8, patch_size=4, num_channels=3)


def _tiny(model_type: str) -> nn.Module:
    """A tiny randomly initialised classifier of `model_type` (seeded)."""
    torch.manual_seed(0)
    builders = {
        "vit": lambda: ViTForImageClassification(ViTConfig(**_TRANSFORMER, **_IMAGE, num_labels=3)),
        "deit": lambda: DeiTForImageClassification(DeiTConfig(**_TRANSFORMER, **_IMAGE, num_labels=3)),
        "beit": lambda: BeitForImageClassification(BeitConfig(**_TRANSFORMER, **_IMAGE, num_labels=3)),
        "dinov2": lambda: Dinov2ForImageClassification(
            Dinov2Config(
                hidden_size=12, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=2, **_IMAGE, num_labels=3
            )
        ),
        "swin": lambda: SwinForImageClassification(
            SwinConfig(
                image_size=8, patch_size=2, embed_dim=6, depths=[1, 1], num_heads=[1, 2], window_size=2, num_labels=3
            )
        ),
        "convnext": lambda: ConvNextForImageClassification(
            ConvNextConfig(num_stages=2, hidden_sizes=[6, 10], depths=[1, 1], num_labels=3)
        ),
        "clip": lambda: CLIPForImageClassification(
            CLIPConfig(vision_config=dict(**_TRANSFORMER, **_IMAGE), text_config=dict(**_TRANSFORMER), num_labels=3)
        ),
        "siglip": lambda: SiglipForImageClassification(
            SiglipConfig(vision_config=dict(**_TRANSFORMER, **_IMAGE), text_config=dict(**_TRANSFORMER), num_labels=3)
        ),
        "bert": lambda: BertForSequenceClassification(BertConfig(vocab_size=40, **_TRANSFORMER, num_labels=3)),
        "roberta": lambda: RobertaForSequenceClassification(
            RobertaConfig(vocab_size=40, **_TRANSFORMER, num_labels=3)
        ),
        "distilbert": lambda: DistilBertForSequenceClassification(
            DistilBertConfig(vocab_size=40, dim=12, n_layers=2, n_heads=3, hidden_dim=20, num_labels=3)
        ),
    }
    return builders[model_type]().eval()


def _inputs(model: nn.Module) -> dict:
    generator = torch.Generator().manual_seed(1)
    if model.config.model_type in ("bert", "roberta", "distilbert", "electra"):
        return {"input_ids": torch.randint(3, 40, (2, 7), generator=generator)}
    return {"pixel_values": torch.randn(2, 3, 8, 8, generator=generator)}


def test_the_table_covers_the_families_of_the_issue():
    assert set(BLOCK_LAYOUTS) == {
        "vit",
        "deit",
        "beit",
        "dinov2",
        "swin",
        "convnext",
        "clip",
        "siglip",
        "bert",
        "roberta",
        "distilbert",
    }


@pytest.mark.parametrize("model_type", sorted(BLOCK_LAYOUTS))
def test_blocks_and_block_outputs_are_found_in_forward_order(model_type):
    model = _tiny(model_type)
    blocks = find_blocks(model)
    assert len(blocks) == 2, [name for name, _ in blocks]
    outputs = block_output_modules(model)
    per_block = 1 if model_type == "convnext" else 2
    assert len(outputs) == per_block * 2
    seen = []
    handles = [m.register_forward_hook(lambda module, args, output: seen.append(module)) for m in outputs]
    with torch.no_grad():
        model(**_inputs(model))
    for handle in handles:
        handle.remove()
    assert seen == outputs  # each fires once per forward, in the order listed


@pytest.mark.parametrize("model_type", sorted(BLOCK_LAYOUTS))
def test_full_rank_factorization_of_the_encoder_reproduces_the_teacher(model_type):
    model = _tiny(model_type)
    with torch.no_grad():
        expected = model(**_inputs(model)).logits
    blocks = [name for name, _ in find_blocks(model)]
    encoder = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(name.startswith(f"{block}.") for block in blocks)
    ]
    full = {re.escape(name): min(m.in_features, m.out_features) for name, m in encoder}
    factorize_model(model, rank=full, target_modules=blocks)
    factorized = {name for name, m in model.named_modules() if isinstance(m, FactorizedLinear)}
    assert factorized == {name for name, _ in encoder}  # the encoder linears, and nothing outside the blocks
    assert len(factorized) == (2 if model_type == "convnext" else 6) * 2
    with torch.no_grad():
        torch.testing.assert_close(model(**_inputs(model)).logits, expected, rtol=1e-4, atol=1e-5)


def test_an_unlisted_model_type_names_the_supported_ones_and_the_manual_route():
    with pytest.raises(ValueError, match=r"model_type 'electra' is not in hf_lowrank's block table; supported: \["):
        block_layout("electra")
    model = ElectraForSequenceClassification(ElectraConfig(vocab_size=40, embedding_size=12, **_TRANSFORMER)).eval()
    with pytest.raises(ValueError, match=r"pass a BlockLayout\(blocks=.*as layout="):
        find_blocks(model)
    by_hand = BlockLayout(r"(.+\.)?encoder\.layer\.\d+", "attention.output.dense", "output.dense")
    assert len(find_blocks(model, by_hand)) == 2 and len(block_output_modules(model, by_hand)) == 4


def test_a_layout_that_matches_nothing_lists_the_modules():
    model = _tiny("vit")
    with pytest.raises(
        ValueError, match=r"the block pattern 'encoder\\\\.block\\\\.\\\\d\+' matches no module .* begin \['vit'"
    ):
        find_blocks(model, BlockLayout(r"encoder\.block\.\d+", None, "mlp"))
    with pytest.raises(ValueError, match=r"block vit\.layers\.0 of ViTForImageClassification has no module 'ffn'"):
        block_output_modules(model, BlockLayout(r"(.+\.)?layers\.\d+", None, "ffn"))

"""The per-model_type block table: every listed family's blocks and block outputs are found, its encoder linears
(and only those) are factorized, and at full rank the factorized model reproduces the teacher's logits."""

import re

import pytest
import torch
from torch import nn
from transformers import ElectraConfig, ElectraForSequenceClassification

from hf_lowrank import FactorizedLinear, factorize_model
from hf_lowrank.models import BLOCK_LAYOUTS, BlockLayout, block_layout, block_output_modules, find_blocks

from families import TRANSFORMER, example_inputs, tiny_classifier


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
    model = tiny_classifier(model_type)
    blocks = find_blocks(model)
    assert len(blocks) == 2, [name for name, _ in blocks]
    outputs = block_output_modules(model)
    per_block = 1 if model_type == "convnext" else 2
    assert len(outputs) == per_block * 2
    seen = []
    handles = [m.register_forward_hook(lambda module, args, output: seen.append(module)) for m in outputs]
    with torch.no_grad():
        model(**example_inputs(model))
    for handle in handles:
        handle.remove()
    assert seen == outputs  # each fires once per forward, in the order listed


@pytest.mark.parametrize("model_type", sorted(BLOCK_LAYOUTS))
def test_full_rank_factorization_of_the_encoder_reproduces_the_teacher(model_type):
    model = tiny_classifier(model_type)
    with torch.no_grad():
        expected = model(**example_inputs(model)).logits
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
        torch.testing.assert_close(model(**example_inputs(model)).logits, expected, rtol=1e-4, atol=1e-5)


def test_an_unlisted_model_type_names_the_supported_ones_and_the_manual_route():
    with pytest.raises(ValueError, match=r"model_type 'electra' is not in hf_lowrank's block table; supported: \["):
        block_layout("electra")
    model = ElectraForSequenceClassification(ElectraConfig(vocab_size=40, embedding_size=12, **TRANSFORMER)).eval()
    with pytest.raises(ValueError, match=r"pass a BlockLayout\(blocks=.*as layout="):
        find_blocks(model)
    by_hand = BlockLayout(r"(.+\.)?encoder\.layer\.\d+", "attention.output.dense", "output.dense")
    assert len(find_blocks(model, by_hand)) == 2 and len(block_output_modules(model, by_hand)) == 4


def test_a_layout_that_matches_nothing_lists_the_modules():
    model = tiny_classifier("vit")
    with pytest.raises(
        ValueError, match=r"the block pattern 'encoder\\\\.block\\\\.\\\\d\+' matches no module .* begin \['vit'"
    ):
        find_blocks(model, BlockLayout(r"encoder\.block\.\d+", None, "mlp"))
    with pytest.raises(ValueError, match=r"block vit\.layers\.0 of ViTForImageClassification has no module 'ffn'"):
        block_output_modules(model, BlockLayout(r"(.+\.)?layers\.\d+", None, "ffn"))

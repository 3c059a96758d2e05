import numpy as np
import pytest
import torch
from transformers import ResNetConfig, ResNetForImageClassification

from hf_lowrank.diagnostics import (
    RepresentationError,
    collect_representations,
    diagnose_model,
    entropy_effective_rank,
    plot_diagnostics,
    sample_svd_ranks,
)

from sweep_helpers import pixel_dataset
from vit_tester import TinyViTTester


tester = TinyViTTester()


def test_vit_representations_are_its_hidden_states():
    model = tester.create_teacher()
    data = pixel_dataset(13, tester.image_size, tester.num_labels)
    matrices, pooled = collect_representations(model, data, max_examples=11, batch_size=4)
    assert len(matrices) == tester.num_hidden_layers + 1
    assert matrices[-1].shape == (11, 10, tester.hidden_size)
    with torch.no_grad():
        outputs = model.vit(pixel_values=data[:11]["pixel_values"], output_hidden_states=True)
    np.testing.assert_allclose(matrices[1], outputs.hidden_states[1].numpy(), atol=1e-6)
    np.testing.assert_allclose(pooled, outputs.last_hidden_state[:, 0].numpy(), atol=1e-6)

    report = diagnose_model(model, data, max_examples=11)
    final = report["layers"][-1]
    ranks = sample_svd_ranks(matrices[-1], (0.95,))[0.95]
    assert final["svd_rank_p99"]["0.95"] == pytest.approx(np.percentile(ranks, 99))
    assert report["pooled_entropy_rank"] == pytest.approx(entropy_effective_rank(pooled))
    assert len(final["sep_curve"]["bandwidth"]) == tester.hidden_size // 2 + 1


def test_cnn_hidden_states_become_spatial_tokens(tmp_path):
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], num_labels=4)
    model = ResNetForImageClassification(config).eval()
    data = pixel_dataset(6, 16, 4)
    matrices, pooled = collect_representations(model, data, max_examples=6)
    with torch.no_grad():
        outputs = model(pixel_values=data[:]["pixel_values"], output_hidden_states=True)
    last = outputs.hidden_states[-1]  # (6, 12, h, w)
    assert matrices[-1].shape == (6, last.shape[2] * last.shape[3], 12)
    np.testing.assert_allclose(matrices[-1][:, :, 5], last[:, 5].flatten(1).numpy(), atol=1e-6)
    assert pooled.shape == (6, 12)  # the pooler output
    report = diagnose_model(model, data, max_examples=6)
    assert plot_diagnostics({"resnet": report}, tmp_path) == ["rank_vs_depth.png", "svd_vs_pca.png", "sep.png"]
    assert (tmp_path / "sep.png").read_bytes()[:4] == b"\x89PNG"


class _NoHiddenStates(torch.nn.Module):
    def forward(self, pixel_values):
        return pixel_values.mean()


def test_models_without_hidden_states_say_what_is_needed():
    with pytest.raises(RepresentationError, match="output_hidden_states"):
        collect_representations(_NoHiddenStates(), pixel_dataset(2, 4, 2))


@pytest.mark.parametrize(
    ("model_type", "class_token"),
    [("vit", True), ("deit", True), ("beit", True), ("dinov2", True), ("clip", True),
     ("swin", False), ("convnext", False), ("siglip", False)],
)  # fmt: skip
def test_the_per_layer_class_token_rank_only_where_token_0_is_a_class_token(model_type, class_token):
    """Swin, ConvNeXt and SigLIP have no class token: token 0 is a patch, so its rank is not reported there; every
    layer gives the rank of its mean token (the average pool), computed here from the hidden states directly."""
    from hf_lowrank.diagnostics import has_class_token

    from families import tiny_classifier

    model = tiny_classifier(model_type)
    assert has_class_token(model) is class_token
    data = pixel_dataset(9, 8, 3)
    report = diagnose_model(model, data, max_examples=9)
    with torch.no_grad():
        hidden = model(pixel_values=data[:9]["pixel_values"], output_hidden_states=True).hidden_states
    for layer, state in zip(report["layers"], hidden):
        tokens = state.flatten(2).transpose(1, 2) if state.ndim == 4 else state  # (9, tokens, dim)
        assert layer["mean_token_entropy_rank"] == pytest.approx(entropy_effective_rank(tokens.mean(1).numpy()))
        if class_token:
            assert layer["cls_entropy_rank"] == pytest.approx(entropy_effective_rank(tokens[:, 0].numpy()))
        else:
            assert layer["cls_entropy_rank"] is None

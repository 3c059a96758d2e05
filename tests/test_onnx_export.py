"""ONNX export of every family's student, checked with onnxruntime at another batch size than the exported example;
the errors for a module the exporter cannot trace, for a batch size the exporter fixed, and without onnxruntime."""

import builtins

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

import hf_lowrank.inference.onnx_export as onnx_export
from hf_lowrank import LowRankForImageClassification, LowRankForSequenceClassification
from hf_lowrank.inference import OnnxExportError, export_onnx
from hf_lowrank.models import BLOCK_LAYOUTS

from families import TEXT_MODEL_TYPES, tiny_classifier


def _inputs(model_type: str, batch: int, tokens: int = 7, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    if model_type in TEXT_MODEL_TYPES:
        mask = torch.ones(batch, tokens, dtype=torch.long)
        mask[0, tokens - 2 :] = 0  # one padded example
        return {"input_ids": torch.randint(3, 40, (batch, tokens), generator=generator), "attention_mask": mask}
    return {"pixel_values": torch.randn(batch, 3, 8, 8, generator=generator)}


def _student(model_type: str):
    cls = LowRankForSequenceClassification if model_type in TEXT_MODEL_TYPES else LowRankForImageClassification
    return cls.from_teacher(tiny_classifier(model_type), rank=2).for_inference()


@pytest.mark.parametrize("model_type", sorted(BLOCK_LAYOUTS))
def test_every_family_exports_and_onnxruntime_gives_its_logits(model_type, tmp_path):
    student = _student(model_type)
    exported = export_onnx(student, _inputs(model_type, 2), tmp_path / "student.onnx")
    assert exported.max_abs_difference <= 1e-4
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    other = _inputs(model_type, 5, tokens=11, seed=2)  # another batch size (and sequence length) than exported
    got = session.run(None, {name: other[name].numpy() for name in exported.input_names})[0]
    with torch.no_grad():
        expected = student(**other).logits.numpy()
    assert got.shape == expected.shape == (5, 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_an_attention_implementation_that_does_not_export_is_retried_with_eager_attention(tmp_path, monkeypatch):
    student = _student("vit")
    real_export = onnx_export._export
    tried = []

    def sdpa_fails(model, inputs, path):  # as Swin's sdpa path fails in some torch versions
        tried.append(model.config._attn_implementation)
        if model.config._attn_implementation == "sdpa":
            raise ValueError("Cannot view a tensor with shape ... as a tensor with shape ...")
        return real_export(model, inputs, path)

    monkeypatch.setattr(onnx_export, "_export", sdpa_fails)
    exported = export_onnx(student, _inputs("vit", 2), tmp_path / "student.onnx")
    assert tried == ["sdpa", "eager"] and exported.attention == "eager"
    assert exported.max_abs_difference <= 1e-4
    assert student.config._attn_implementation == "sdpa"  # the student itself is left as it was


class _DataDependent(nn.Module):
    """Branches in Python on a tensor's value: what torch.export cannot trace."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, hidden):
        out = self.inner(hidden)
        if hidden[..., 0].sum() > 0:
            return out * 2
        return out


class _BatchAsNumbers(nn.Module):
    """Reads a tensor's values as Python numbers: the exporter silently fixes the batch size."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, hidden):
        scale = torch.tensor(hidden.abs().amax(dim=(1, 2)).tolist()).view(-1, 1, 1)
        return self.inner(hidden) * scale


def test_a_module_the_exporter_cannot_trace_is_named(tmp_path):
    student = _student("vit")
    student.model.vit.layers[1].mlp.fc1 = _DataDependent(student.model.vit.layers[1].mlp.fc1)
    with pytest.raises(
        OnnxExportError, match=r"in module 'model\.vit\.layers\.1\.mlp\.fc1' \(_DataDependent\).*torch\.cond"
    ):
        export_onnx(student, _inputs("vit", 2), tmp_path / "student.onnx")


def test_a_batch_size_fixed_by_the_exporter_is_refused_and_leaves_the_path_as_it_was(tmp_path):
    student = _student("vit")
    student.model.vit.layers[0].mlp.fc2 = _BatchAsNumbers(student.model.vit.layers[0].mlp.fc2)
    (tmp_path / "student.onnx").write_bytes(b"an earlier export")
    with pytest.raises(OnnxExportError, match="fixed the batch size to 2"):
        export_onnx(student, _inputs("vit", 2), tmp_path / "student.onnx")
    assert (tmp_path / "student.onnx").read_bytes() == b"an earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["student.onnx"]  # no partial file left


def test_without_onnxruntime_the_error_says_what_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ImportError, match=r'pip install "hf_lowrank\[onnx\]"'):
        export_onnx(nn.Identity(), {"pixel_values": torch.zeros(1)}, tmp_path / "x.onnx")

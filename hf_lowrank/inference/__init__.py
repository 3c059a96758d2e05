"""Inference: measured latency of a model's forward pass with its conditions (`measure_latencies`), and ONNX export
verified with onnxruntime (`export_onnx`). The inference layout itself is the students' own (`for_inference`,
`hf_lowrank.models.inference_layout`), so that a student loaded with `trust_remote_code` has it."""

from .latency import LatencyMeasurement, device_name, measure_latencies, measure_latency, measure_side_by_side
from .onnx_export import OnnxExport, OnnxExportError, export_onnx


__all__ = [
    "LatencyMeasurement",
    "OnnxExport",
    "OnnxExportError",
    "device_name",
    "export_onnx",
    "measure_latencies",
    "measure_latency",
    "measure_side_by_side",
]

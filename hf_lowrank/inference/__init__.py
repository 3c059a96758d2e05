"""Inference: measured latency of a model's forward pass with its conditions (`measure_latencies`), and ONNX export
verified with onnxruntime (`export_onnx`). The inference layout itself is the students' own (`for_inference`,
`hf_lowrank.models.inference_layout`), so that a student loaded with `trust_remote_code` has it."""

from .latency import LatencyMeasurement, device_name, measure_latencies, measure_latency


__all__ = ["LatencyMeasurement", "device_name", "measure_latencies", "measure_latency"]

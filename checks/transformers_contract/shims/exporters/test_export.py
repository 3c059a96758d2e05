# SHIM (contract_check). The transformers 5.24.0 sdist ships only tests/*.py, not tests/exporters/.
# Every test in the upstream ExportTesterMixin is @slow (and mostly needs onnx/executorch/openvino),
# so in a non-RUN_SLOW run they would all be skipped; an empty mixin loses nothing that would run here.
class ExportTesterMixin:
    pass

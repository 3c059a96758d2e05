"""A sweep's results: typed objects (`schema`) and their file on disk (`io`)."""

from .io import RESULTS_FORMAT, RESULTS_VERSION, ResultsError, atomic_write_json, read_results_payload, strict_json
from .schema import (
    BudgetStudentResult,
    CNNStudentResult,
    DatasetInfo,
    PreviewResult,
    StudentConfig,
    StudentResult,
    SweepResults,
    TeacherResult,
)


__all__ = [
    "BudgetStudentResult",
    "PreviewResult",
    "CNNStudentResult",
    "DatasetInfo",
    "RESULTS_FORMAT",
    "RESULTS_VERSION",
    "ResultsError",
    "StudentConfig",
    "StudentResult",
    "SweepResults",
    "TeacherResult",
    "atomic_write_json",
    "read_results_payload",
    "strict_json",
]

"""The sweep's argument checks live in two modules (without a teacher: argument_checks.py; against the loaded
teacher: teacher_checks.py), and each repeated choice has one name."""

import ast
from pathlib import Path

import pytest

import hf_lowrank.sweep
from hf_lowrank.models import BRIDGES
from hf_lowrank.sweep import SweepArguments, SweepError
from hf_lowrank.sweep.argument_checks import BRIDGE_CHOICES, PUSH_CHOICES


SWEEP = Path(hf_lowrank.sweep.__file__).parent
CHECK_MODULES = {"argument_checks.py", "teacher_checks.py"}


def test_bridge_choices_are_one_name_read_by_the_flag_its_check_and_the_models():
    assert BRIDGE_CHOICES == ("none", *BRIDGES)
    assert SweepArguments.__dataclass_fields__["student_bridge"].metadata["choices"] == list(BRIDGE_CHOICES)
    with pytest.raises(SweepError, match=r"^--student_bridge 'wide': must be one of none, lift, widelast\.$"):
        SweepArguments(student_bridge="wide")
    with pytest.raises(SweepError, match=rf"entries must be {', '.join(PUSH_CHOICES)} or rank numbers"):
        SweepArguments(push_ranks=["best"])


def test_every_check_function_of_the_sweep_is_in_one_of_the_two_check_modules():
    """A `check_*` function (a check of the arguments) defined anywhere else in sweep/ would be a seventh place."""
    elsewhere = {
        (path.name, node.name)
        for path in SWEEP.glob("*.py")
        if path.name not in CHECK_MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("check_")
    }
    # store.py checks the output directory (a filesystem fact, not an argument's value).
    assert elsewhere == {("store.py", "check_writable")}

"""The task contract (tao_launcher/registry.py, docs/adding_a_task.md) holds for every task of the registry."""

import inspect
import subprocess
import sys
import typing

import pytest

from tao_launcher.registry import SPEC_CLASSES, SUBTASKS, TASKS, RunContext, Subtask, task

AVAILABLE = list(TASKS.values())
PAIRS = [(t, s) for t in AVAILABLE for s in t.spec_subtasks()]


def test_every_task_lists_every_tao_subtask():
    for t in TASKS.values():
        assert tuple(t.subtasks) == SUBTASKS, t.name
        assert t.subtasks["download_specs"].schema_ref is None


@pytest.mark.parametrize("t,sub", PAIRS, ids=[f"{t.name}.{s.name}" for t, s in PAIRS])
def test_subtask_has_a_schema_and_a_typed_function(t, sub):
    schema = sub.schema()
    assert schema.__name__ == SPEC_CLASSES[sub.name]
    assert schema.example.startswith(f"tao {t.name} {sub.name} "), "every schema carries a worked example"
    function = sub.function()
    hints = typing.get_type_hints(function)
    params = list(inspect.signature(function).parameters)
    assert params == ["spec", "run"], f"{sub.function_ref} must be fn(spec, run)"
    assert hints["spec"] is schema, f"{sub.function_ref}'s spec is annotated {hints['spec']}, not {schema.__name__}"
    assert hints["run"] is RunContext


def test_a_listed_subtask_without_a_function_fails_the_contract():
    broken = task("text_classification", "x").subtasks["train"]
    missing = Subtask("train", broken.schema_ref, "tao_launcher.tasks.text_classification.subtasks:no_such")
    with pytest.raises(AttributeError):
        missing.function()
    with pytest.raises(ModuleNotFoundError):
        task("no_such_task", "x").subtasks["train"].schema()


def test_the_registry_imports_no_torch():
    code = ("import sys, tao_launcher.registry as r; [s.schema() for t in r.TASKS.values() "
            "for s in t.spec_subtasks()]; print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"

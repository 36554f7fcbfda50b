"""Schema ranges (min/max beside each default), path kinds, and the checks the loader makes with them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

from tao_launcher.errors import UsageError
from tao_launcher.registry import TASKS
from tao_launcher.spec.load import SpecError, check_paths, folder_problem, leaf_fields, out_of_range, resolve_spec
from tao_launcher.spec.render import render_help, render_yaml
from tao_launcher.spec.schema import PATH_KINDS, Range, SpecBase, spec_field

SCHEMAS = {f"{t.name}.{s.name}": s.schema() for t in TASKS.values() for s in t.spec_subtasks()}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_number_of_every_task_declares_its_range(name):
    """A number without a range lets 0, -1 or a 400-digit value reach the trainer; a new task's schema
    is held to the same rule. Every path field says what it names."""
    for key, leaf in leaf_fields(SCHEMAS[name]).items():
        base = leaf.type if leaf.type in (int, float) else getattr(leaf.type, "__args__", (None,))[0]
        if base in (int, float) and not isinstance(leaf.default, bool):
            assert leaf.range, f"{name}: {key} declares no min/max"
            assert not out_of_range(leaf, leaf.default), (key, leaf.default)   # the default is allowed
        if leaf.path:
            assert leaf.path in PATH_KINDS and leaf.path is not True, f"{name}: {key} does not say what it names"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_help_and_spec_files_show_the_ranges(name):
    schema = SCHEMAS[name]
    help_text, yaml_text = render_help(schema), render_yaml(schema)
    for key, leaf in leaf_fields(schema).items():
        if leaf.range:
            assert f"allowed: {leaf.range.describe()}" in help_text.replace("\n", " "), key
            assert f"allowed: {leaf.range.describe()}" in yaml_text, key


@pytest.mark.parametrize("spec, inside, outside, text", [
    (dict(min=1, max=10), [1, 10, 5], [0, 11, -1], "1 to 10"),
    (dict(min=0.0, min_exclusive=True, max=1.0), [1e-9, 1.0], [0.0, -1.0, 1.5], "more than 0 and at most 1"),
    (dict(min=0.0, max=1.0, max_exclusive=True), [0.0, 0.999], [1.0, -0.1], "at least 0 and less than 1"),
    (dict(min=1, max=100, also=(-1,)), [-1, 1, 100], [0, -2, 101], "1 to 100 (or -1)"),
    (dict(min=0), [0, 10**400], [-1], "at least 0"),
    (dict(max=5), [-10**400, 5], [6], "at most 5"),
])
def test_range_contains_and_describes(spec, inside, outside, text):
    allowed = Range(**spec)
    assert all(allowed.contains(v) for v in inside) and not any(allowed.contains(v) for v in outside)
    assert allowed.describe() == text


@dataclass
class Toy(SpecBase):
    count: int = spec_field(2, "a count", min=1, max=10)
    ratio: float = spec_field(0.5, "a ratio", min=0.0, max=1.0)
    pair: List[float] = spec_field([0.1, 0.2], "two numbers", min=0.0, max=1.0, length=2)
    limit: int = spec_field(-1, "a limit", min=1, max=100, also=(-1,))
    steps: Optional[int] = spec_field(None, "optional steps", min=0, max=50)


@pytest.mark.parametrize("override, message", [
    ("count=0", "command line 'count=0': count must be 1 to 10, got 0"),
    ("count=" + "9" * 400, "count must be 1 to 10, got a 400-digit number"),
    ("ratio=" + "9" * 400, "ratio must be 0 to 1, got a 400-digit number"),
    ("ratio=1.5", "ratio must be 0 to 1, got 1.5"),
    ("ratio=.inf", "ratio must be a finite number"),
    ("ratio=.nan", "ratio must be a finite number"),
    ("pair=[0.1]", "pair must be a list of 2 numbers, each 0 to 1, got [0.1]"),
    ("pair=[0.1,2]", "pair must be a list of numbers, each 0 to 1, got [0.1, 2]"),
    ("limit=0", "limit must be 1 to 100 (or -1), got 0"),
    ("steps=-3", "steps must be 0 to 50, got -3"),
])
def test_out_of_range_is_one_sentence_with_the_range(override, message):
    with pytest.raises(SpecError) as info:
        resolve_spec(Toy, None, [override])
    assert str(info.value).splitlines() == [str(info.value)]
    assert message in str(info.value)


def test_in_range_values_and_sentinels_pass(tmp_path):
    spec = resolve_spec(Toy, None, ["count=10", "ratio=1", "pair=[0, 1]", "limit=-1", "steps=null"])
    assert (spec.count, spec.ratio, spec.pair, spec.limit, spec.steps) == (10, 1.0, [0.0, 1.0], -1, None)
    path = tmp_path / "toy.yaml"
    path.write_text("count: 3\nratio: 0\n")
    assert resolve_spec(Toy, path).count == 3


def test_out_of_range_in_a_file_names_the_line(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text("# toy\ncount: 3\nratio: 7\n")
    with pytest.raises(SpecError, match=f"{path}:3: ratio must be 0 to 1, got 7"):
        resolve_spec(Toy, path)


@dataclass
class Paths(SpecBase):
    data: str = spec_field("", "a file", path="file")
    folder: str = spec_field("", "a folder", path="dir")
    either: Optional[str] = spec_field(None, "a file or a folder", path="exists")
    out: Optional[str] = spec_field(None, "a folder to write", path="out_dir")


def test_check_paths(tmp_path):
    file, folder = tmp_path / "f.txt", tmp_path / "d"
    file.write_text("x")
    folder.mkdir()

    def problem(**values) -> str:
        spec = Paths(**{"data": str(file), "folder": str(folder), **values})
        with pytest.raises(UsageError) as info:
            check_paths(spec)
        return str(info.value)

    check_paths(Paths(data=str(file), folder=str(folder), either=str(file), out=str(tmp_path / "new" / "deep")))
    assert problem(data=str(folder)) == f"data {folder} is a folder, not a file: give the path of a file"
    assert problem(data=str(tmp_path / "no")) == f"data {tmp_path / 'no'} does not exist: check the path"
    assert problem(data="") == "data is empty: give it a path"
    assert problem(either="") == "either is empty: give it a path, or null to leave it unset"
    assert problem(folder=str(file)) == f"folder {file} is a file, not a folder: give the path of a folder"
    assert "is a file, not a folder" in problem(out=str(file))
    assert f"cannot be created because {file} is a file" in problem(out=str(file / "sub"))


@pytest.mark.skipif(os.geteuid() == 0,
                    reason="root writes to a read-only folder; test_bad_inputs uses a read-only tmpfs")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert "read-only" in folder_problem(folder / "results")
        assert "is read-only" in folder_problem(folder)
    finally:
        folder.chmod(0o700)


def test_a_folder_that_can_be_made_has_no_problem(tmp_path):
    assert folder_problem(tmp_path / "a" / "b") == ""
    assert folder_problem(Path(tmp_path)) == ""

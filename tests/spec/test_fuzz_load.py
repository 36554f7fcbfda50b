"""Fuzzing the spec loader: whatever a spec file or a ``key=value`` holds, the loader returns a valid spec
or raises the project's UsageError, never anything else, and a spec it returns keeps every range.

1,000 spec files and 1,000 override lists a run (hypothesis; no example database, so every run is fresh
and hermetic): about 13 s on 2 cores. ``FUZZ_EXAMPLES=N`` changes the count.
"""

from __future__ import annotations

import dataclasses
import math
import os
import string
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tao_launcher.errors import UsageError
from tao_launcher.registry import TASKS
from tao_launcher.spec.load import coerce, leaf_fields, out_of_range, resolve_spec, section_keys
from tao_launcher.spec.schema import REQUIRED

SCHEMAS = [s.schema() for t in TASKS.values() for s in t.spec_subtasks()]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 1000))   # per test; fewer while debugging a failure
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# the characters YAML and OmegaConf give a meaning to, and some that break text files
SPECIAL = "[]{}:,'\"!&*%@#|>-?$\\=.~ \t\n\r\x00\x85\ufeff\u2028é日"
text = st.text(alphabet=st.sampled_from(list(string.ascii_letters + string.digits + SPECIAL)), max_size=30)
numbers = st.one_of(st.integers(), st.integers(min_value=-10**500, max_value=10**500), st.floats(allow_nan=True),
                    st.sampled_from(["1e999", "-.inf", ".nan", "0x1F", "0o17", "1_000", "+5", "-0", "1e-400"]))
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(text, inner, max_size=3)), max_leaves=8)
TAGS = ["!!python/name:os.system", "!!python/object/apply:os.system ['true']", "!!set", "!!binary aGk=",
        "!!timestamp 2001-12-14", "*a", "&a 1", "${oc.env:HOME}", "${", "<<: *a", "!!str", "!custom x"]


def schema_keys(schema) -> list:
    return list(leaf_fields(schema)) + section_keys(schema)


# built once: hypothesis spends most of a run building and validating strategies otherwise
KEYS = {schema: st.one_of(st.sampled_from(schema_keys(schema)), text) for schema in SCHEMAS}
VALUE_TEXT = st.one_of(text, numbers.map(str), st.sampled_from(TAGS),
                       values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))
INSERTS = st.one_of(st.sampled_from([t.encode() for t in TAGS]), st.binary(max_size=4), text.map(str.encode))


@st.composite
def override_lists(draw):
    schema = draw(st.sampled_from(SCHEMAS))
    item = st.one_of(st.builds(lambda k, v: f"{k}={v}", KEYS[schema], VALUE_TEXT), text)
    return schema, draw(st.lists(item, max_size=6))


@st.composite
def spec_documents(draw):
    schema = draw(st.sampled_from(SCHEMAS))
    tree: dict = {}
    for key in draw(st.lists(KEYS[schema], max_size=8)):
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            node = child if isinstance(child, dict) else node.setdefault(part, {}) if part not in node else {}
        node[last] = draw(values)
    raw = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False).encode("utf-8")
    for _ in range(draw(st.integers(0, 3))):  # mutations: bytes that YAML or UTF-8 refuse, tags, cuts
        position = draw(st.integers(0, len(raw)))
        raw = raw[:position] + draw(INSERTS) + raw[position + draw(st.integers(0, 3)):]
    return schema, raw


def assert_valid(spec, schema) -> None:
    """A spec the loader returns holds values of the declared types, inside their ranges."""
    assert isinstance(spec, schema)
    for key, leaf in leaf_fields(schema).items():
        value = spec
        for part in key.split("."):
            value = getattr(value, part)
        assert value != REQUIRED, key
        assert coerce(value, leaf.type)[0], (key, value)
        assert not out_of_range(leaf, value), (key, value)
        if isinstance(value, float):
            assert math.isfinite(value), (key, value)


@FUZZ
@given(override_lists())
def test_overrides_give_a_spec_or_a_usage_error(case):
    schema, overrides = case
    try:
        spec = resolve_spec(schema, None, overrides)
    except UsageError as err:
        assert str(err) and "Traceback" not in str(err)
        return
    assert_valid(spec, schema)


@FUZZ
@given(spec_documents())
def test_spec_files_give_a_spec_or_a_usage_error(case):
    schema, raw = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_bytes(raw)
        try:
            spec = resolve_spec(schema, path, [])
        except UsageError as err:
            message = str(err)
            assert message and "Traceback" not in message
            return
    assert_valid(spec, schema)


def test_the_fuzzers_reach_both_outcomes():
    """Not a fuzzer that only ever produces garbage: valid specs come out of the same generators."""
    schema = next(s for s in SCHEMAS if all(leaf.default != REQUIRED for leaf in leaf_fields(s).values()))
    assert dataclasses.is_dataclass(resolve_spec(schema, None, []))

"""Resolve a spec: schema defaults, then the spec file, then ``key=value`` overrides.

Every problem is collected before anything runs, each with where it came from
(``train.yaml:12`` or ``command line``) and the fix (the closest valid key, an example
override). The result is an instance of the subtask's schema dataclass.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Dict, List, Tuple

from tao_launcher.errors import UsageError
from tao_launcher.spec.schema import REQUIRED


class SpecError(UsageError):
    """One or more spec fields are wrong; the message lists every one."""


# ----------------------------------------------------------------------------- schema walk

@dataclasses.dataclass(frozen=True)
class Leaf:
    """One settable value of a schema, with everything validation and help need."""

    key: str
    type: Any
    default: Any
    help: str
    path: bool
    choices: tuple


def leaf_fields(schema: type, prefix: str = "") -> Dict[str, Leaf]:
    """All leaves of a schema as ``{"a.b.c": Leaf}``, in declaration order."""
    leaves: Dict[str, Leaf] = {}
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            leaves.update(leaf_fields(hints[f.name], key + "."))
        else:
            leaves[key] = Leaf(key, hints[f.name], default_of(f), f.metadata.get("help", ""),
                               f.metadata.get("path", False), f.metadata.get("choices", ()))
    return leaves


def section_keys(schema: type, prefix: str = "") -> List[str]:
    keys = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            keys.append(prefix + f.name)
            keys.extend(section_keys(hints[f.name], prefix + f.name + "."))
    return keys


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def type_name(t: Any) -> str:
    origin = typing.get_origin(t)
    if origin is typing.Union:
        inner = [a for a in typing.get_args(t) if a is not type(None)]
        return type_name(inner[0]) + " or null"
    if origin in (list, List):
        item = typing.get_args(t)[0]
        return "a list of " + {int: "integers", float: "numbers", bool: "booleans", str: "strings"}.get(item, str(item))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(t, str(t))


def coerce(value: Any, t: Any) -> Tuple[bool, Any]:
    """Check ``value`` against type ``t``; return (ok, value converted to the canonical type)."""
    if value == REQUIRED:
        return True, value
    origin = typing.get_origin(t)
    if origin is typing.Union:
        if value is None:
            return True, None
        inner = [a for a in typing.get_args(t) if a is not type(None)][0]
        return coerce(value, inner)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            return False, value
        item_t = typing.get_args(t)[0]
        out = []
        for item in value:
            ok, conv = coerce(item, item_t)
            if not ok:
                return False, value
            out.append(conv)
        return True, out
    if t is bool:
        return isinstance(value, bool), value
    if t is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if t is float:
        if isinstance(value, str):  # PyYAML reads 2e-5 (no dot) as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if t is str:
        if isinstance(value, str):
            return True, value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, str(value)
        return False, value
    return True, value


# ----------------------------------------------------------------------------- YAML with lines

def read_yaml_with_lines(path: Path) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """Flatten a YAML mapping to ``{"a.b": value}`` and ``{"a.b": line}`` (1-based)."""
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"spec file {path} does not exist: check the -e path "
                         f"(tao <task> download_specs -o DIR writes the defaults)") from None
    except (IsADirectoryError, PermissionError) as err:
        raise UsageError(f"cannot read spec file {path}: {err.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: not valid YAML ({getattr(err, 'problem', err)}); "
                         f"fix the syntax, for example 'key: value' with spaces for indentation") from None
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode):
        raise UsageError(f"{path}:1: a spec file must be a mapping of 'key: value' lines")
    lines: Dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str) -> None:
        for key_node, value_node in n.value:
            key = prefix + str(key_node.value)
            lines[key] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                walk(value_node, key + ".")

    walk(node, "")
    values: Dict[str, Any] = {}

    def flatten(tree: Dict[str, Any], prefix: str) -> None:
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                flatten(value, f"{prefix}{key}.")
            else:
                values[f"{prefix}{key}"] = value

    flatten(yaml.safe_load(text), "")
    return values, lines


def parse_overrides(overrides: List[str]) -> Dict[str, Any]:
    """Parse ``a.b=c`` overrides with OmegaConf's dotlist rules (YAML typing of the value)."""
    from omegaconf import OmegaConf

    parsed: Dict[str, Any] = {}
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise UsageError(f"cannot read override '{item}': write it as key=value, "
                             f"for example trainer.max_epochs=2")
        key = item.split("=", 1)[0].strip()
        conf = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
        value: Any = conf
        for part in key.split("."):
            value = value[part]
        if isinstance(value, dict):
            raise UsageError(f"override '{item}' sets a whole section: set its fields one by one, "
                             f"for example {key}.<field>=value")
        parsed[key] = value
    return parsed


# ----------------------------------------------------------------------------- resolve

def _nest(flat: Dict[str, Any]) -> Dict[str, Any]:
    tree: Dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def build(schema: type, tree: Dict[str, Any]) -> Any:
    """Instantiate the schema dataclass tree from a nested dict of already-valid values."""
    hints = typing.get_type_hints(schema)
    kwargs = {}
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = build(hints[f.name], tree.get(f.name, {}))
        elif f.name in tree:
            kwargs[f.name] = tree[f.name]
    return schema(**kwargs)


def resolve_spec(schema: type, spec_file: Path | None = None, overrides: List[str] = (),
                 ) -> Any:
    """Merge defaults, spec file and overrides; raise SpecError listing every problem."""
    leaves = leaf_fields(schema)
    sections = set(section_keys(schema))
    merged = {key: leaf.default for key, leaf in leaves.items()}
    problems: List[str] = []
    origin: Dict[str, str] = {}
    rejected = set()  # keys already reported: one problem per key

    def suggestion(key: str) -> str:
        close = difflib.get_close_matches(key, list(leaves), n=1, cutoff=0.6)
        if not close:
            # match the last component anywhere (e.g. 'max_epochs' -> 'trainer.max_epochs')
            close = [k for k in leaves if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]][:1]
        return f"; did you mean {close[0]}?" if close else \
            f"; valid keys are listed by --help"

    def apply(values: Dict[str, Any], where: Dict[str, str]) -> None:
        for key, value in values.items():
            if key in sections:
                if value is None or value == {}:
                    continue
                problems.append(f"{where[key]}: {key} is a section, not a value: set its fields, "
                                f"for example {key}.<field>")
                continue
            if key not in leaves:
                problems.append(f"{where[key]}: unknown key {key}{suggestion(key)}")
                continue
            leaf = leaves[key]
            ok, converted = coerce(value, leaf.type)
            if not ok:
                problems.append(f"{where[key]}: {key} must be {type_name(leaf.type)}, got {value!r}")
                rejected.add(key)
                continue
            choices = leaf.choices
            if choices and converted not in (REQUIRED, None):
                canon = {str(c).lower(): c for c in choices}
                if str(converted).lower() not in canon:
                    problems.append(f"{where[key]}: {key} must be one of {', '.join(map(str, choices))}, "
                                    f"got {value!r}")
                    rejected.add(key)
                    continue
                converted = canon[str(converted).lower()]
            merged[key] = converted
            origin[key] = where[key]

    if spec_file is not None:
        values, lines = read_yaml_with_lines(Path(spec_file))
        apply(values, {k: f"{spec_file}:{lines.get(k, 1)}" for k in values})
    if overrides:
        over = parse_overrides(list(overrides))
        apply(over, {k: f"command line '{k}={_show(v)}'" for k, v in over.items()})

    for key, value in merged.items():
        if value == REQUIRED and key not in rejected:
            where = f"{origin[key]}: " if key in origin else ""
            problems.append(f"{where}{key} is required (it is ???): set it in the spec file or add "
                            f"{key}={_example(leaves[key])} to the command line")
    if problems:
        head = "the spec has a problem" if len(problems) == 1 else f"the spec has {len(problems)} problems"
        raise SpecError(head + ":\n  " + "\n  ".join(problems))
    return build(schema, _nest(merged))


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _example(leaf: Leaf) -> str:
    if leaf.path:
        return "/data/..."
    if leaf.choices:
        return str(leaf.choices[0])
    return {int: "2", float: "0.1", bool: "true"}.get(leaf.type, "...")


def to_dict(spec: Any) -> Dict[str, Any]:
    return dataclasses.asdict(spec)


def path_keys(schema: type) -> List[str]:
    """Dotted keys of every field that names a file or folder (mapped between host and container)."""
    return [key for key, leaf in leaf_fields(schema).items() if leaf.path]


def map_paths(spec: Any, mapper) -> None:
    """Rewrite every path field of a resolved spec in place with ``mapper(str) -> str``."""
    for key in path_keys(type(spec)):
        *parents, leaf = key.split(".")
        node = spec
        for p in parents:
            node = getattr(node, p)
        value = getattr(node, leaf)
        if isinstance(value, str) and value not in ("", REQUIRED):
            setattr(node, leaf, mapper(value))

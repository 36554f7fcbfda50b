"""Resolve a spec: schema defaults, then the spec file, then ``key=value`` overrides.

Every problem is collected before anything runs, each with where it came from
(``train.yaml:12`` or ``command line``) and the fix (the closest valid key, an example
override). The result is an instance of the subtask's schema dataclass.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import stat
import typing
from pathlib import Path
from typing import Any, Dict, List, Tuple

from tao_launcher.errors import UsageError
from tao_launcher.spec.schema import REQUIRED, Range


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
    path: Any          # False, or how the path is checked (schema.PATH_KINDS)
    choices: tuple
    range: Range = Range()
    length: Any = None  # the exact length of a list, when the schema fixes it


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
                               f.metadata.get("path", False), f.metadata.get("choices", ()),
                               f.metadata.get("range", Range()), f.metadata.get("length"))
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
        if typing.get_origin(item) in (dict, Dict):
            return "a list of mappings ({key: value, ...})"
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
    if origin in (dict, Dict):  # a mapping of string keys (a list item such as {"question": ..., "context": ...})
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return False, value
        value_t = typing.get_args(t)[1]
        out = {}
        for key, item in value.items():
            ok, conv = coerce(item, value_t)
            if not ok:
                return False, value
            out[key] = conv
        return True, out
    if t is bool:
        return isinstance(value, bool), value
    if t is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if t is float:
        try:
            if isinstance(value, str):  # PyYAML reads 2e-5 (no dot) as a string
                number = float(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                number = float(value)
            else:
                return False, value
        except ValueError:
            return False, value
        except OverflowError:  # an int too large for a float: kept, so the range check names it
            return True, value
        return math.isfinite(number), number if math.isfinite(number) else value
    if t is str:
        if isinstance(value, str):
            return True, value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, str(value)
        return False, value
    return True, value


# ----------------------------------------------------------------------------- YAML with lines

KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
MAX_SPEC_BYTES = 10 * 1024 * 1024   # a spec is a page of settings; more is the wrong file
MAX_SPEC_VALUES = 10_000            # YAML aliases can multiply a small file into millions of keys
MAX_SPEC_DEPTH = 32


def read_yaml_with_lines(path: Path) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """Flatten a YAML mapping to ``{"a.b": value}`` and ``{"a.b": line}`` (1-based).

    The one place a spec file is read: a missing file, a folder, bytes that are not UTF-8, YAML the
    parser refuses (syntax, tags such as ``!!python/name``, aliases that multiply) all become a
    UsageError naming ``FILE:LINE``."""
    import yaml

    raw = _read_spec_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the spec file as "
                         f"UTF-8") from None
    text = text.lstrip("\ufeff")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        tree = yaml.safe_load(text) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise UsageError(f"{where}: not valid YAML ({problem}); fix the syntax, for example 'key: value' with "
                         f"spaces for indentation (tags such as !!python are not allowed)") from None
    except Exception as err:  # noqa: BLE001 - PyYAML's constructors fail in their own ways on odd scalars
        raise UsageError(f"{path}: cannot read the spec file ({type(err).__name__}); write plain "
                         f"'key: value' lines") from None
    if node is None:
        return {}, {}
    if not isinstance(node, yaml.MappingNode) or not isinstance(tree, dict):
        raise UsageError(f"{path}:1: a spec file must be a mapping of 'key: value' lines")
    lines: Dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str, depth: int) -> None:
        for key_node, value_node in n.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise UsageError(f"{path}:{key_node.start_mark.line + 1}: a key must be a plain name, not a "
                                 f"list or mapping")
            key = prefix + str(key_node.value)
            lines[key] = key_node.start_mark.line + 1
            if len(lines) > MAX_SPEC_VALUES:
                raise UsageError(f"{path}: more than {MAX_SPEC_VALUES} values (YAML aliases?); a spec has "
                                 f"a few sections of 'key: value' lines")
            if isinstance(value_node, yaml.MappingNode) and depth < MAX_SPEC_DEPTH:
                walk(value_node, key + ".", depth + 1)

    walk(node, "", 0)
    values: Dict[str, Any] = {}

    def flatten(tree: Dict[str, Any], prefix: str, depth: int) -> None:
        if depth > MAX_SPEC_DEPTH:
            raise UsageError(f"{path}:{lines.get(prefix.rstrip('.'), 1)}: the spec nests deeper than "
                             f"{MAX_SPEC_DEPTH} levels; a spec has a few sections of 'key: value' lines")
        for key, value in tree.items():
            if len(values) >= MAX_SPEC_VALUES:
                raise UsageError(f"{path}: more than {MAX_SPEC_VALUES} values (YAML aliases?); a spec has "
                                 f"a few sections of 'key: value' lines")
            if isinstance(value, dict) and value:
                flatten(value, f"{prefix}{key}.", depth + 1)
            else:
                values[f"{prefix}{key}"] = value

    flatten(tree, "", 0)
    return values, lines


def _read_spec_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise UsageError(f"spec file {path} is a folder, not a file: pass a YAML file to -e")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"spec file {path} does not exist: check the -e path "
                         f"(tao <task> download_specs -o DIR writes the defaults)") from None
    except OSError as err:
        raise UsageError(f"cannot read spec file {path}: {err.strerror or err}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise UsageError(f"spec file {path} is larger than {MAX_SPEC_BYTES // 2**20} MiB: pass a spec file to -e, "
                         f"not a data file")
    return raw


def parse_overrides(overrides: List[str]) -> Dict[str, Any]:
    """Parse ``a.b=c`` overrides with OmegaConf's dotlist rules (YAML typing of the value).

    The one place an override is parsed: anything the YAML parser refuses (``[0.9,``, ``'adamw``,
    ``*a``, ``!!set``, ``${``) and any key that is not a dotted name is a UsageError naming it."""
    from omegaconf import OmegaConf

    parsed: Dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"cannot read override '{_clip(item)}': write it as key=value, "
                             f"for example trainer.max_epochs=2")
        key, value_text = item.split("=", 1)
        key = key.strip()
        if not KEY_PATTERN.fullmatch(key):
            raise UsageError(f"cannot read override '{_clip(item)}': write it as key=value with a dotted field "
                             f"name as the key, for example trainer.max_epochs=2 ('--help' lists them)")
        try:
            conf = OmegaConf.to_container(OmegaConf.from_dotlist([f"{key}={value_text}"]))
            value: Any = conf
            for part in key.split("."):
                value = value[part]
        except Exception as err:  # noqa: BLE001 - any parser refusal is the user's syntax, said once here
            problem = " ".join(str(getattr(err, "problem", None) or str(err).splitlines()[0] or
                                   type(err).__name__).split())
            raise UsageError(f"cannot read override '{_clip(item)}': the value is not valid YAML ({problem}); "
                             f"quote it, for example {key}='text', or write a list as [1, 2]") from None
        if isinstance(value, dict):
            raise UsageError(f"override '{_clip(item)}' sets a whole section: set its fields one by one, "
                             f"for example {key}.<field>=value")
        parsed[key] = value
    return parsed


def _clip(text: str, width: int = 60) -> str:
    """Echo user text in a message: one line, at most ``width`` characters."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= width else text[:width - 3] + "..."


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
            "; valid keys are listed by --help"

    def apply(values: Dict[str, Any], where: Dict[str, str]) -> None:
        for key, value in values.items():
            if key in sections:
                if value is None or value == {}:
                    continue
                problems.append(f"{where[key]}: {key} is a section, not a value: set its fields, "
                                f"for example {key}.<field>")
                continue
            if key not in leaves:
                problems.append(f"{where[key]}: unknown key {_clip(key)}{suggestion(key)}")
                continue
            leaf = leaves[key]
            ok, converted = coerce(value, leaf.type)
            if not ok:
                expected = "a finite number" if isinstance(value, float) and not math.isfinite(value) \
                    else type_name(leaf.type)
                problems.append(f"{where[key]}: {key} must be {expected}, got {_show_value(value)}")
                rejected.add(key)
                continue
            choices = leaf.choices
            if choices and converted not in (REQUIRED, None):
                canon = {str(c).lower(): c for c in choices}
                if str(converted).lower() not in canon:
                    problems.append(f"{where[key]}: {key} must be one of {', '.join(map(str, choices))}, "
                                    f"got {_show_value(value)}")
                    rejected.add(key)
                    continue
                converted = canon[str(converted).lower()]
            bad = out_of_range(leaf, converted)
            if bad:
                problems.append(f"{where[key]}: {key} {bad}, got {_show_value(value)}")
                rejected.add(key)
                continue
            merged[key] = converted
            origin[key] = where[key]

    if spec_file is not None:
        values, lines = read_yaml_with_lines(Path(spec_file))
        apply(values, {k: f"{spec_file}:{lines.get(k, 1)}" for k in values})
    if overrides:
        over = parse_overrides(list(overrides))
        apply(over, {k: f"command line '{_clip(f'{k}={_show(v)}')}'" for k, v in over.items()})

    for key, value in merged.items():
        if value == REQUIRED and key not in rejected:
            where = f"{origin[key]}: " if key in origin else ""
            problems.append(f"{where}{key} is required (it is ???): set it in the spec file or add "
                            f"{key}={_example(leaves[key])} to the command line")
    if len(problems) == 1:  # one problem: one line
        raise SpecError(problems[0])
    if problems:
        raise SpecError(f"the spec has {len(problems)} problems:\n  " + "\n  ".join(problems))
    spec = build(schema, _nest(merged))
    rules = spec.problems() if hasattr(spec, "problems") else []   # rules between fields (SpecBase.problems)
    if rules:
        raise SpecError(rules[0] if len(rules) == 1 else
                        f"the spec has {len(rules)} problems:\n  " + "\n  ".join(rules))
    return spec


def out_of_range(leaf: Leaf, value: Any) -> str:
    """``"must be ..."`` when a type-checked value breaks the leaf's range or list length, else ``""``."""
    if value is None or value == REQUIRED:
        return ""
    if isinstance(value, list):
        item = f", each {leaf.range.describe()}" if leaf.range else ""
        if leaf.length is not None and len(value) != leaf.length:
            return f"must be a list of {leaf.length} {type_name(leaf.type).split(' ')[-1]}{item}"
        if leaf.range and not all(leaf.range.contains(v) for v in value):
            return f"must be a list of {type_name(leaf.type).split(' ')[-1]}{item}"
        return ""
    if leaf.range and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and not leaf.range.contains(value):
        return f"must be {leaf.range.describe()}"
    return ""


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _show_value(value: Any) -> str:
    """A value for a message: a huge number by its digit count, long text cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"a {len(str(abs(value)))}-digit number"
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d{21,}", value.strip()):
        return f"a {len(value.strip().lstrip('+-'))}-digit number"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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


INPUT_KINDS = ("file", "dir", "exists")  # path kinds a subtask reads (an "out_dir" it writes)


def input_paths(spec: Any) -> List[Tuple[str, str]]:
    """(dotted key, path) of every set field that names something the subtask reads."""
    leaves = leaf_fields(type(spec))
    found = []
    for key in path_keys(type(spec)):
        if leaves[key].path not in INPUT_KINDS:
            continue
        node = spec
        for part in key.split("."):
            node = getattr(node, part)
        for value in node if isinstance(node, list) else [node]:
            if isinstance(value, str) and value not in ("", REQUIRED):
                found.append((key, value))
    return found


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
        elif isinstance(value, list):  # a list of paths (speech_to_text's file_paths)
            setattr(node, leaf, [mapper(v) if isinstance(v, str) and v else v for v in value])


def check_paths(spec: Any) -> None:
    """Check every path field of a resolved (and host-mapped) spec against its kind, before any work.

    One UsageError for the first problem: an empty path, a missing file, a folder where a file is expected
    (or the reverse), or an output folder that cannot be created."""
    leaves = leaf_fields(type(spec))
    for key in path_keys(type(spec)):
        kind = leaves[key].path
        *parents, name = key.split(".")
        node = spec
        for p in parents:
            node = getattr(node, p)
        value = getattr(node, name)
        if value is None or value == REQUIRED or kind is True:
            continue
        if isinstance(value, list):  # a list of paths: each checked, named by its position
            for i, item in enumerate(value):
                _check_path(f"{key}[{i}]", item, kind, optional=False)
        else:
            _check_path(key, value, kind, optional=_optional(leaves[key].type))


def _check_path(key: str, value: Any, kind: str, optional: bool) -> None:
    if not str(value).strip():
        raise UsageError(f"{key} is empty: give it a path" + (", or null to leave it unset" if optional else ""))
    path = Path(os.path.expanduser(str(value)))
    if kind == "out_dir":
        problem = folder_problem(path)
        if problem:
            raise UsageError(f"{key} {path} {problem}")
    elif not path.exists():
        raise UsageError(f"{key} {path} does not exist: check the path")
    elif kind == "file" and file_problem(path):
        raise UsageError(f"{key} {path} {file_problem(path)}: give the path of a file")
    elif kind == "dir" and not path.is_dir():
        raise UsageError(f"{key} {path} is a file, not a folder: give the path of a folder")


def file_problem(path: Path) -> str:
    """Why ``path`` cannot be read as a file (``"does not exist"``, ``"is a folder, not a file"``, ``"is not a
    regular file (a FIFO)"``: a FIFO or a device such as /dev/zero blocks or never ends), or ``""``."""
    if path.is_dir():
        return "is a folder, not a file"
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        mode = path.stat().st_mode
        special = next((name for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                                                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
                        if test(mode)), "a special file")
        return f"is not a regular file ({special})"
    return ""


def folder_problem(path: Path) -> str:
    """Why ``path`` cannot be used as a folder to write into (it is created when missing), or ``""``."""
    if path.exists() and not path.is_dir():
        return "is a file, not a folder: give a folder (it is created when missing)"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot be created because {existing} is a file: give a folder path"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is read-only" if existing == path else f"cannot be created in {existing}, which is read-only"
        return f"{what}: give a folder you can write to"
    return ""


def _optional(t: Any) -> bool:
    return typing.get_origin(t) is typing.Union and type(None) in typing.get_args(t)

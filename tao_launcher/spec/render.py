"""Write a schema out as commented YAML (download_specs, specs/) and as --help text."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Dict, List, Optional

from tao_launcher.spec.load import default_of


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:  # YAML 1.1 floats need a dot: 5.0e-05
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) if isinstance(v, (str, dict)) else _yaml_scalar(v) for v in value) + "]"
    text = str(value)
    if text == "???":
        return "???"
    plain = text and text.strip() == text and not any(c in text for c in ":#{}[],&*!|>'\"%@`") \
        and text.lower() not in ("null", "true", "false", "yes", "no", "on", "off", "~")
    try:
        float(text)
        plain = False
    except ValueError:
        pass
    return text if plain else json.dumps(text)


def describe(help_text: str, allowed: Any, length: Any = None) -> str:
    """A field's help with its allowed range (``...; allowed: 1 to 100``), as --help and the YAML show it."""
    parts = []
    if length:
        parts.append(f"{length} values")
    if allowed:
        parts.append(("each " if length else "") + allowed.describe())
    return help_text + (f"; allowed: {', '.join(parts)}" if parts else "")


def render_yaml(schema: type, title: str = "", values: Optional[Dict[str, Any]] = None) -> str:
    """The schema's defaults as a YAML file with each field's description as a comment; ``values`` (dotted key ->
    value) replace defaults, for a task's spec variants (speech_to_text's one file per arch)."""
    out: List[str] = []
    values = values or {}
    if title:
        out += [f"# {line}" if line else "#" for line in title.splitlines()] + [""]

    def walk(cls: type, indent: str, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            help_text = f.metadata.get("help", "")
            if dataclasses.is_dataclass(hints[f.name]):
                out.append(f"{indent}{f.name}:" + (f"  # {help_text}" if help_text else ""))
                walk(hints[f.name], indent + "  ", f"{prefix}{f.name}.")
            else:
                line = f"{indent}{f.name}: {_yaml_scalar(values.get(prefix + f.name, default_of(f)))}"
                help_text = describe(help_text, f.metadata.get("range"), f.metadata.get("length"))
                out.append(line + (f"  # {help_text}" if help_text else ""))

    unknown = set(values) - set(_leaf_keys(schema))
    if unknown:
        raise ValueError(f"spec variant sets unknown keys: {sorted(unknown)}")
    walk(schema, "", "")
    return "\n".join(out) + "\n"


def _leaf_keys(schema: type) -> List[str]:
    from tao_launcher.spec.load import leaf_fields

    return list(leaf_fields(schema))


def render_help(schema: type) -> str:
    """One line per field: dotted key, default, description. Used by `tao <task> <subtask> --help`."""
    from tao_launcher.spec.load import leaf_fields

    leaves = leaf_fields(schema)
    width = max((len(k) for k in leaves), default=0)
    lines = []
    for key, leaf in leaves.items():
        lines.append(f"  {key.ljust(width)}  = {_yaml_scalar(leaf.default)}")
        text = describe(leaf.help, leaf.range, leaf.length)
        if text:
            lines.append(f"  {' ' * width}    {text}")
    return "\n".join(lines)

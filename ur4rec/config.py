"""One way to read parameters, shared by every stage and CLI command.

Parameters live in `params.yaml`. A run may point at another file (`--params FILE`) and override leaves
with `-S key.path=value` (values parsed as YAML, so `-S train.lr=1e-3` is a float and `-S datasets=[ml-1m]`
a list). Sections are turned into typed dataclasses with `section()` so a typo in a key is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from ur4rec.errors import UserError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ParamsError(UserError, ValueError):
    """A parameter file or override is malformed; the message names the file and key."""


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML params file and apply `key.path=value` overrides in order."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params file not found: {path} (run from the project root or pass --params FILE)")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: top level must be a mapping, got {type(params).__name__}")
    for item in overrides or []:
        apply_override(params, item)
    return params


def apply_override(params: dict[str, Any], item: str) -> None:
    """Set one dotted leaf, e.g. `train.lr=1e-3`; intermediate mappings are created when missing."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"override {item!r} is not of the form key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ParamsError(f"override {item!r}: value is not valid YAML: {exc}") from exc
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string; nobody means that
    node = params
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ParamsError(f"override {item!r}: {part!r} is a {type(child).__name__}, not a mapping")
        node = child
    node[parts[-1]] = value


def get_path(params: Mapping[str, Any], dotted: str, default: Any = dataclasses.MISSING) -> Any:
    """Read a dotted key; a missing key is an error naming the key unless a default is given."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is not dataclasses.MISSING:
                return default
            raise ParamsError(f"missing parameter {dotted!r}")
        node = node[part]
    return node


def merged(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Deep-merge mappings left to right (later wins); used for per-dataset or per-model overrides."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def section(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and coercing simple types.

    Nested dataclass fields are built recursively, so a whole params section maps onto one typed config.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"{where or cls.__name__}: unknown parameter(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints.get(name), value, f"{where or cls.__name__}.{name}")
    try:
        return cls(**kwargs)
    except ParamsError:
        raise
    except (TypeError, ValueError) as exc:  # a missing field, or a value the config's own check refuses
        raise ParamsError(f"{where or cls.__name__}: {exc}") from exc


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if hint is None or value is None:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return section(hint, value, where)
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError as exc:
            raise ParamsError(f"{where}: expected a number, got {value!r}") from exc
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParamsError(f"{where}: expected an integer, got {value!r}")
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        (arg, *_) = typing.get_args(hint) or (None,)
        items = [_coerce(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    return value

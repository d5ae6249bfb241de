"""One way to read parameters, shared by every stage and CLI command.

Parameters live in `params.yaml`. A run may point at another file (`--params FILE`) and override leaves
with `-S key.path=value` (values parsed as YAML, so `-S train.lr=1e-3` is a float and `-S datasets=[ml-1m]`
a list). Sections are turned into typed dataclasses with `section()` so a typo in a key is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import copy
import dataclasses
import math
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


# Names of datasets, backbones and variants become folder names (data/<dataset>/runs/<backbone>/...): a safe
# alphabet, so no name can point outside its folder (`../base`) or hide (a leading dot).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_name(name: Any, where: str) -> str:
    """`name` when it is safe as a folder name, else a ParamsError naming `where` and the rule."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ParamsError(f"{where}: {name!r} is not a valid name: use letters, digits, '_', '.' and '-', "
                          "starting with a letter or digit, without '..'")
    return name


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
    except ParamsError as exc:
        if where and where not in str(exc):  # a check in __post_init__ that cannot know its section's name
            raise ParamsError(f"{where}: {exc}") from exc
        raise
    except (TypeError, ValueError) as exc:  # a missing field, or a value the config's own check refuses
        raise ParamsError(f"{where or cls.__name__}: {exc}") from exc


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """`value` checked against (and, for numbers, converted to) the field's type.

    A bool field takes only true / false (YAML's `maybe` or `1` is refused); None (YAML's `null`) only where
    the type says Optional; numbers are converted where nothing is lost; strings must be strings.
    """
    if hint is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            if type(None) in typing.get_args(hint):
                return None
            raise ParamsError(f"{where}: a value is required here, got null")
        if len(args) == 1:
            return _coerce(args[0], value, where)
        return _union(args, value, where)
    if value is None:
        raise ParamsError(f"{where}: a value is required here, got null")
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str and not isinstance(value, str):
        raise ParamsError(f"{where}: expected a string, got {value!r}")
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return section(hint, value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError as exc:
            raise ParamsError(f"{where}: expected a number, got {value!r}") from exc
        if math.isnan(number):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return number
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParamsError(f"{where}: expected an integer, got {value!r}")
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        (arg, *_) = typing.get_args(hint) or (None,)
        items = [_coerce(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if (origin is dict or hint is dict) and not isinstance(value, Mapping):
        raise ParamsError(f"{where}: expected a mapping, got {value!r}")
    if dataclasses.is_dataclass(hint) and not isinstance(value, Mapping):
        raise ParamsError(f"{where}: expected a mapping of settings, got {value!r}")
    return value


def _union(args: list[Any], value: Any, where: str) -> Any:
    """A value of a union of several types (e.g. `int | str`): the first type it fits, else an error."""
    for arg in args:
        try:
            return _coerce(arg, value, where)
        except ParamsError:
            continue
    names = " or ".join(getattr(a, "__name__", str(a)) for a in args)
    raise ParamsError(f"{where}: expected {names}, got {value!r}")

"""Frozen configuration dataclasses to and from YAML.

Every pipeline stage owns a frozen dataclass of its settings. This module turns such a dataclass into plain data
(for YAML / JSON) and back, with strict checking: an unknown key or a value of the wrong type is a ``ValueError``
naming the key, so a typo in a config file never silently falls back to a default. The resolved copy of a config
is saved beside every run's outputs.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from npcseg.io.atomic import atomic_write_text

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Convert a (nested) config dataclass to plain dicts, lists and scalars."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    fields = [field for field in dataclasses.fields(config) if field.init]  # others are derived, not settings
    return {field.name: _to_plain(getattr(config, field.name)) for field in fields}


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, tuple | list):
        return [_to_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _to_plain(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def config_from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "config") -> T:
    """Build the dataclass ``cls`` from ``data``; missing keys take their defaults.

    Raises:
        ValueError: on an unknown key or a value that does not fit the field's annotation.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    no_default = dataclasses.MISSING
    missing = sorted(
        name
        for name, field in fields.items()
        if name not in data and field.default is no_default and field.default_factory is no_default
    )
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing} (no default)")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(annotation: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (arg for arg in args if arg is not type(None)):
            try:
                return _coerce(option, value, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(f"{where}: {value!r} fits none of {annotation}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(annotation):
        return config_from_dict(annotation, value, where=where)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(arg, item, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return {key: _coerce(args[1], item, f"{where}.{key}") for key, item in value.items()}
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    if annotation is Path:
        return Path(value)
    return value


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-4`` as a float as YAML 1.2 does (YAML 1.1 makes it a string)."""


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting strings such as ``"1e5"`` that :class:`_Loader` would read as floats."""


for _yaml_class in (_Loader, _Dumper):
    _yaml_class.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )


def config_differences(saved: Any, wanted: Any, prefix: str = "", *, arrow: str = "->") -> list[str]:
    """``key: old -> new`` for every differing leaf of two nested plain-data dicts (e.g. two
    :func:`config_to_dict` results), nested keys joined with dots; empty when they are equal."""
    if isinstance(saved, Mapping) and isinstance(wanted, Mapping):
        changes = []
        for key in sorted(set(saved) | set(wanted), key=str):
            changes.extend(config_differences(saved.get(key), wanted.get(key), f"{prefix}{key}.", arrow=arrow))
        return changes
    return [] if saved == wanted else [f"{prefix.rstrip('.')}: {saved!r} {arrow} {wanted!r}"]


def read_yaml(path: Path) -> Any:
    """Parse a YAML file safely (no code runs), reading ``1e-4`` as a float as YAML 1.2 does.

    Raises:
        FileNotFoundError: when ``path`` is not a file.
        ValueError: when it is not valid YAML; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error


def load_config(cls: type[T], path: Path) -> T:
    """Read a YAML file into the dataclass ``cls`` (see :func:`config_from_dict`)."""
    return config_from_dict(cls, read_yaml(path) or {}, where=str(path))


def load_config_over(base: T, path: Path) -> T:
    """Read a YAML file of (some) fields of ``base``'s dataclass on top of ``base``.

    Nested sections (nested config dataclasses) merge key by key with the base's, so a file may set one field of
    a nested section. Unknown keys and wrongly typed values are ``ValueError``s naming the file and the key.
    """
    path = Path(path)
    data = read_yaml(path) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return merge_over(base, data, where=str(path))


def merge_over(base: T, data: Mapping[str, Any], *, where: str = "config") -> T:
    """``base`` with (some) fields replaced by ``data``; nested sections merge key by key (checked like a file)."""
    return config_from_dict(type(base), _merge(config_to_dict(base), data), where=where)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def save_config(config: Any, path: Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(Path(path), yaml.dump(config_to_dict(config), Dumper=_Dumper, sort_keys=False))


def with_overrides(config: T, overrides: Mapping[str, Any]) -> T:
    """Return a copy of ``config`` with top-level fields replaced, checked like a loaded file."""
    merged = {**config_to_dict(config), **overrides}
    return config_from_dict(type(config), merged, where=type(config).__name__)

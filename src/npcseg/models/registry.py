"""Name -> network registry, so that configs name networks and tests enumerate them.

Every network is an ``nn.Module`` whose constructor takes one frozen config dataclass. The contract:

* input ``(B, C, H, W)`` float, ``C`` = ``len(config.sequences)``, channels in the config's sequence order;
* output: logits ``(B, 1, H, W)`` (sigmoid, threshold etc. live in losses, metrics and inference);
* a wrong channel count, or a spatial size the network cannot handle, is a ``ValueError``.

Adding a network is one file that decorates its class with :func:`register_model`, plus one import in
``npcseg/models/__init__.py``::

    @register_model("my-net", MyNetConfig, tiny_overrides={"base_width": 8})
    class MyNet(nn.Module):
        def __init__(self, config: MyNetConfig) -> None: ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from npcseg.config import config_from_dict

ModelT = TypeVar("ModelT", bound=type[nn.Module])


@dataclass(frozen=True)
class ModelEntry:
    """One registered network.

    Attributes:
        name: registry name (what configs and the CLI use).
        model_class: the ``nn.Module`` subclass; called as ``model_class(config)``.
        config_class: its frozen config dataclass.
        tiny_overrides: config values that make a small, fast instance (for contract tests and smoke runs).
    """

    name: str
    model_class: type[nn.Module]
    config_class: type
    tiny_overrides: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, config_class: type, *, tiny_overrides: Mapping[str, Any] | None = None
) -> Callable[[ModelT], ModelT]:
    """Class decorator registering a network under ``name`` with its config dataclass.

    Args:
        name: registry name; must be unused.
        config_class: a frozen dataclass with a ``sequences`` field (the input sequences, in channel order).
        tiny_overrides: config values for a small instance used by the contract tests.

    Raises:
        ValueError: if ``name`` is taken or ``config_class`` is not a frozen dataclass with ``sequences``.
    """
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered (by {_REGISTRY[name].model_class.__name__})")
    if not dataclasses.is_dataclass(config_class) or not config_class.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise ValueError(f"model {name!r}: config class {config_class!r} must be a frozen dataclass")
    if "sequences" not in {item.name for item in dataclasses.fields(config_class)}:
        raise ValueError(f"model {name!r}: config class {config_class.__name__} needs a 'sequences' field")

    def decorate(model_class: ModelT) -> ModelT:
        _REGISTRY[name] = ModelEntry(name, model_class, config_class, dict(tiny_overrides or {}))
        return model_class

    return decorate


def model_names() -> list[str]:
    """The registered network names, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {model_names()}") from None


def model_config_class(name: str) -> type[Any]:
    """The config dataclass of the network ``name``."""
    return _entry(name).config_class


def make_config(name: str, config: Any = None) -> Any:
    """Resolve ``config`` (``None`` -> defaults, mapping -> checked dataclass, or an instance) for ``name``.

    Raises:
        ValueError: on an unknown name, an unknown key or bad value in a mapping, or a config of another class.
    """
    entry = _entry(name)
    if config is None:
        return entry.config_class()
    if isinstance(config, Mapping):
        return config_from_dict(entry.config_class, config, where=f"model {name!r} config")
    if type(config) is not entry.config_class:
        raise ValueError(
            f"model {name!r} expects a {entry.config_class.__name__} (or a mapping), got {type(config).__name__}"
        )
    return config


def build_model(name: str, config: Any = None) -> nn.Module:
    """Build the network ``name`` from its config (dataclass instance, mapping of fields, or ``None`` for defaults).

    Raises:
        ValueError: see :func:`make_config`, or an invalid combination of config values.
    """
    return _entry(name).model_class(make_config(name, config))


def tiny_config(name: str) -> Any:
    """A small config of ``name`` (defaults with the registered ``tiny_overrides``) for tests and smoke runs."""
    entry = _entry(name)
    return config_from_dict(entry.config_class, entry.tiny_overrides, where=f"model {name!r} tiny config")

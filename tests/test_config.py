"""Config dataclasses <-> YAML: strict loading (unknown keys, wrong types) and exact round trips."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from npcseg.config import config_from_dict, config_to_dict, load_config, save_config, with_overrides


@dataclass(frozen=True)
class Optimiser:
    name: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class Network:
    channels: tuple[int, ...] = (32, 64, 128)
    growth_rate: int = 16
    dropout: float | None = None
    norm: Literal["group", "batch"] = "group"


@dataclass(frozen=True)
class Experiment:
    name: str
    sequences: tuple[str, ...] = ("t1", "t2")
    network: Network = field(default_factory=Network)
    optimiser: Optimiser | None = field(default_factory=Optimiser)
    cache: Path | None = None
    deterministic: bool = True
    class_weights: dict[str, float] = field(default_factory=dict)
    num_parameters: int = field(default=0, init=False)  # derived, not a setting


def a_config() -> Experiment:
    return Experiment(
        name="deu-t1t2",
        sequences=("t2",),
        network=Network(channels=(16, 32), growth_rate=12, dropout=0.25, norm="batch"),
        optimiser=Optimiser(name="sgd", learning_rate=0.01, betas=(0.5, 0.75)),
        cache=Path("/data/cache"),
        deterministic=False,
        class_weights={"background": 0.1, "tumour": 0.9},
    )


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    config = a_config()
    path = tmp_path / "runs" / "config.yaml"
    save_config(config, path)

    loaded = load_config(Experiment, path)

    assert loaded == config
    assert isinstance(loaded.sequences, tuple) and isinstance(loaded.network.channels, tuple)
    assert isinstance(loaded.optimiser, Optimiser) and isinstance(loaded.optimiser.betas, tuple)
    assert isinstance(loaded.cache, Path)
    assert "num_parameters" not in path.read_text()


def test_round_trip_with_optional_fields_none(tmp_path: Path) -> None:
    config = dataclasses.replace(a_config(), optimiser=None, cache=None)
    save_config(config, tmp_path / "config.yaml")
    assert load_config(Experiment, tmp_path / "config.yaml") == config


def test_defaults_fill_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("name: x\nnetwork:\n  growth_rate: 8\n")
    assert load_config(Experiment, path) == Experiment(name="x", network=Network(growth_rate=8))


def test_exponent_floats_as_people_write_them(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML) reads "1e-4" as a string; a config must read it as the number people mean.
    path = tmp_path / "config.yaml"
    path.write_text("name: x\noptimiser:\n  learning_rate: 1e-4\n  betas: [9E-1, 1.5e+0]\n")
    loaded = load_config(Experiment, path)
    assert loaded.optimiser == Optimiser(learning_rate=1e-4, betas=(0.9, 1.5))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nlearning_rate: 0.1\n", r"unknown key\(s\) \['learning_rate'\]"),
        ("name: x\nnetwork:\n  channel: [1]\n", r"\.network: unknown key\(s\) \['channel'\]"),
        ("name: x\noptimiser:\n  nme: sgd\n", r"\.optimiser: .*unknown key\(s\) \['nme'\]"),
    ],
)
def test_unknown_keys_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        load_config(Experiment, path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": 3}, r"config\.name: expected a string, got 3"),
        ({"name": "x", "deterministic": "yes"}, r"\.deterministic: expected true/false"),
        ({"name": "x", "network": {"growth_rate": 1.5}}, r"\.network\.growth_rate: expected an integer"),
        ({"name": "x", "network": {"growth_rate": True}}, r"\.growth_rate: expected an integer, got True"),
        (
            {"name": "x", "network": {"norm": "instance"}},
            r"\.norm: 'instance' is not one of \['group', 'batch'\]",
        ),
        ({"name": "x", "network": {"channels": 32}}, r"\.channels: expected a list"),
        ({"name": "x", "network": {"channels": [32, "64"]}}, r"\.channels\[1\]: expected an integer"),
        ({"name": "x", "network": {"dropout": "0.5"}}, r"\.dropout: '0\.5' fits none of"),
        ({"name": "x", "network": None}, r"\.network: expected a mapping"),
        ({"name": "x", "optimiser": {"betas": [0.9]}}, r"\.betas: expected 2 values, got 1"),
        (
            {"name": "x", "optimiser": {"learning_rate": True}},
            r"\.learning_rate: expected a number, got True",
        ),
        ({"name": "x", "class_weights": [1.0]}, r"\.class_weights: expected a mapping"),
        ({"name": "x", "class_weights": {"tumour": "high"}}, r"\.class_weights\.tumour: expected a number"),
    ],
)
def test_wrong_types_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_dict(Experiment, data)


def test_strings_that_look_like_numbers_stay_strings(tmp_path: Path) -> None:
    config = dataclasses.replace(a_config(), name="1e5", sequences=("2e-3", "1.0", "7"))
    save_config(config, tmp_path / "config.yaml")
    assert load_config(Experiment, tmp_path / "config.yaml") == config


def test_missing_required_key_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"config: missing key\(s\) \['name'\]"):
        config_from_dict(Experiment, {"sequences": ["t1"]})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(Experiment, tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML"):
        load_config(Experiment, broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- name\n")
    with pytest.raises(ValueError, match=r"list\.yaml: expected a mapping, got list"):
        load_config(Experiment, listing)


def test_to_dict_gives_plain_data() -> None:
    plain = config_to_dict(a_config())
    assert plain["sequences"] == ["t2"]
    assert plain["network"] == {"channels": [16, 32], "growth_rate": 12, "dropout": 0.25, "norm": "batch"}
    assert plain["cache"] == "/data/cache"
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain
    with pytest.raises(TypeError):
        config_to_dict(Experiment)


def test_with_overrides_checks_like_a_file() -> None:
    config = a_config()
    assert with_overrides(config, {"deterministic": True}).deterministic is True
    assert with_overrides(config, {"deterministic": True}).network == config.network
    with pytest.raises(ValueError, match=r"Experiment: unknown key\(s\) \['determinstic'\]"):
        with_overrides(config, {"determinstic": True})
    with pytest.raises(ValueError, match=r"Experiment\.network\.growth_rate: expected an integer"):
        with_overrides(config, {"network": {"growth_rate": "many"}})


finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    learning_rate=finite_floats,
    betas=st.tuples(finite_floats, finite_floats),
    channels=st.lists(st.integers(-(2**40), 2**40), max_size=5),
    dropout=st.none() | finite_floats,
    name=st.text(max_size=20) | st.sampled_from(["1e5", "1.5", "-2E-3", "true", "null", "0x1F", "12"]),
)
def test_round_trip_is_exact_for_any_values(
    tmp_path_factory: pytest.TempPathFactory,
    learning_rate: float,
    betas: tuple[float, float],
    channels: list[int],
    dropout: float | None,
    name: str,
) -> None:
    config = Experiment(
        name=name,
        network=Network(channels=tuple(channels), dropout=dropout),
        optimiser=Optimiser(learning_rate=learning_rate, betas=betas),
    )
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    save_config(config, path)
    assert load_config(Experiment, path) == config

"""RegistrationConfig presets, validation and YAML round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from npcseg.config import save_config
from npcseg.registration.config import PRESETS, RegistrationConfig, load_registration_config, preset


def test_paper_preset_is_the_papers_settings() -> None:
    paper = RegistrationConfig.paper()
    assert paper.name == "paper"
    assert paper.histogram_bins == 50
    assert paper.optimizer == "one_plus_one"
    assert paper.initial_radius == 0.004
    assert paper.max_iterations == 300
    assert paper.growth_factor == 1.05
    assert paper.epsilon == 1.5e-6
    assert paper.initialization == "geometry"
    assert paper.shrink_factors == (1,)
    assert paper.smoothing_sigmas_mm == (0.0,)
    assert paper.refine == "none"
    assert paper.scales == "explicit"
    assert preset("paper") == paper


def test_default_preset() -> None:
    assert preset("default") == RegistrationConfig()
    assert RegistrationConfig().name == "default"
    assert set(PRESETS) == {"default", "paper"}
    with pytest.raises(ValueError, match="unknown registration preset 'fast'"):
        preset("fast")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampling_fraction": 0.0}, "sampling_fraction"),
        ({"shrink_factors": (4, 2, 1)}, "one per pyramid level"),
        ({"shrink_factors": ()}, "shrink_factors"),
        ({"relaxation_factor": 1.0}, "relaxation_factor"),
        ({"histogram_bins": 2}, "histogram_bins"),
        ({"initial_radius": -1.0}, "initial_radius"),
        ({"overlap_margin_mm": -1.0}, "overlap_margin_mm"),
    ],
)
def test_validation(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegistrationConfig().with_changes(**changes)


def test_yaml_overrides_the_base_preset(tmp_path: Path) -> None:
    path = tmp_path / "registration.yaml"
    path.write_text("max_iterations: 50\nrefine_tolerance: 1e-3\n")
    config = load_registration_config(path, base=RegistrationConfig.paper())
    assert config.max_iterations == 50
    assert config.refine_tolerance == 0.001  # YAML 1.1 would read 1e-3 as a string
    assert config.optimizer == "one_plus_one"  # from the base
    assert config.name == "paper+custom"


def test_saved_config_round_trips(tmp_path: Path) -> None:
    for name in PRESETS:
        config = preset(name)
        save_config(config, tmp_path / f"{name}.yaml")
        assert load_registration_config(tmp_path / f"{name}.yaml", base=RegistrationConfig()) == config


def test_yaml_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("max_iteration: 50\n")
    with pytest.raises(ValueError, match="max_iteration"):
        load_registration_config(path)
    path.write_text("optimizer: adam\n")
    with pytest.raises(ValueError, match="adam"):
        load_registration_config(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_registration_config(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_registration_config(tmp_path / "missing.yaml")

"""PreprocessingConfig: presets, validation, YAML round trip and overrides on a preset."""

from __future__ import annotations

import pytest

from npcseg.config import load_config, save_config
from npcseg.preprocessing.config import PreprocessingConfig, load_preprocessing_config, preset
from npcseg.registration.config import RegistrationConfig


def test_presets():
    deu = PreprocessingConfig.deu()
    assert deu == PreprocessingConfig() == preset("deu")
    assert deu.sequences == ("t1", "t2") and deu.reference_sequence == "t2" and deu.slice_size == 256
    assert deu.target_spacing_yx_mm is None and deu.spacing_from == "t1"
    assert deu.label_resampling == "linear_threshold" and deu.normalization == "minmax"
    assert deu.registration_source == "register" and deu.registration == RegistrationConfig()
    seqseg = preset("seqseg")
    assert seqseg.sequences == ("t1", "t1c", "t2") and seqseg.slice_size == 384 and seqseg.spacing_from == "fit"
    assert seqseg.moving_sequences == ("t1", "t1c")
    with pytest.raises(ValueError, match="unknown preprocessing preset"):
        preset("nnunet")


def test_required_sequences_include_reference_and_spacing_source():
    t1_only = PreprocessingConfig(sequences=("t1",))
    assert t1_only.required_sequences == ("t1", "t2")
    assert t1_only.moving_sequences == ("t1",)
    explicit = PreprocessingConfig(sequences=("t2",), target_spacing_yx_mm=(1.0, 1.0))
    assert explicit.required_sequences == ("t2",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sequences": ()}, "at least one"),
        ({"sequences": ("t1", "flair")}, "unknown sequence"),
        ({"sequences": ("t1", "t1")}, "must not repeat"),
        ({"reference_sequence": "pd"}, "reference_sequence"),
        ({"target_spacing_yx_mm": (0.0, 1.0)}, "target_spacing_yx_mm"),
        ({"spacing_from": "t3"}, "spacing_from"),
        ({"percentile_low": 60.0, "percentile_high": 40.0}, "percentiles"),
        ({"slice_size": 0}, "slice_size"),
    ],
)
def test_invalid_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        PreprocessingConfig(**changes)


def test_yaml_round_trip(tmp_path):
    config = PreprocessingConfig.seqseg().with_changes(
        target_spacing_yx_mm=(0.9, 0.8), registration=RegistrationConfig.paper()
    )
    save_config(config, tmp_path / "config.yaml")
    assert load_config(PreprocessingConfig, tmp_path / "config.yaml") == config


def test_overrides_on_a_preset_merge_the_registration_section(tmp_path):
    path = tmp_path / "pre.yaml"
    path.write_text("slice_size: 320\nregistration:\n  seed: 5\n  epsilon: 1e-7\n")
    config = load_preprocessing_config(path, base=PreprocessingConfig.seqseg())
    assert config.slice_size == 320 and config.sequences == ("t1", "t1c", "t2")
    assert config.registration == RegistrationConfig().with_changes(seed=5, epsilon=1e-7)
    path.write_text("normalisation: minmax\n")
    with pytest.raises(ValueError, match=r"pre\.yaml.*normalisation"):
        load_preprocessing_config(path)
    path.write_text("normalization: zscore\n")
    with pytest.raises(ValueError, match="zscore"):
        load_preprocessing_config(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_preprocessing_config(tmp_path / "missing.yaml")

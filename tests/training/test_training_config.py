"""TrainingConfig: the paper's defaults, YAML round trip, refusal of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from npcseg.config import save_config
from npcseg.training.config import TrainingConfig, load_training_config


def test_defaults_are_the_papers() -> None:
    config = TrainingConfig()
    assert (config.loss, config.learning_rate, config.batch_size, config.epochs) == ("dice", 1e-4, 1, 200)
    assert config.model == "deu" and config.sequences == ("t1", "t2")
    assert config.augmentation.enabled and config.augmentation.flip_left_right_probability == 0.5
    assert config.model_config().sequences == ("t1", "t2")


def test_yaml_round_trip_and_partial_files(tmp_path: Path) -> None:
    config = TrainingConfig(model_options={"growth_rate": 8}, sequences=("t2",), model="deu-single", epochs=3)
    save_config(config, tmp_path / "config.yaml")
    assert load_training_config(tmp_path / "config.yaml") == config
    partial = tmp_path / "partial.yaml"
    partial.write_text("learning_rate: 1e-3\naugmentation:\n  scale_range: [0.8, 1.2]\n")
    loaded = load_training_config(partial)
    assert loaded.learning_rate == 1e-3 and loaded.augmentation.scale_range == (0.8, 1.2)
    assert loaded.augmentation.flip_left_right_probability == 0.5  # nested section merged key by key


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"tumour_oversampling": 1.5}, "tumour_oversampling"),
        ({"threshold": 1.0}, "threshold"),
        ({"model": "nope"}, "unknown model"),
        ({"loss": "nope"}, "unknown loss"),
        ({"sequences": ("t1", "flair")}, "flair"),
        ({"model_options": {"sequences": ["t1"]}}, "model_options"),
        ({"model_options": {"widths": [8, 8]}}, "widths"),
        ({"model": "deu-single"}, "exactly one sequence"),
    ],
)
def test_bad_values_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**changes)  # type: ignore[arg-type]


def test_unknown_keys_in_a_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        load_training_config(path)

"""The tumour-present decision: the z rules and the scores on hand-built sequences, a tiny classifier run."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from cascade_cases import write_fake_cache

from npcseg.cascade.presence import PresenceConfig, load_presence, presence_decisions, presence_scores, train_presence


def test_gaps_between_positive_slices_are_filled_and_short_runs_dropped() -> None:
    probabilities = np.array([0.9, 0.2, 0.9, 0.1, 0.1, 0.8, 0.1, 0.6, 0.7, 0.1, 0.1, 0.95, 0.1])
    raw = probabilities >= 0.5
    np.testing.assert_array_equal(presence_decisions(probabilities, fill_gaps=False, min_run=1), raw)
    filled = [1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0]
    np.testing.assert_array_equal(presence_decisions(probabilities, fill_gaps=True, min_run=1), filled)
    kept = [1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]  # the isolated slice 11 goes
    np.testing.assert_array_equal(presence_decisions(probabilities, fill_gaps=True, min_run=2), kept)
    no_fill = [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]  # without filling only the run 7-8 is 2 long
    np.testing.assert_array_equal(presence_decisions(probabilities, fill_gaps=False, min_run=2), no_fill)
    np.testing.assert_array_equal(presence_decisions(probabilities, 0.96), np.zeros(13, dtype=bool))


def test_scores_count_slices_by_hand() -> None:
    truth = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    predicted = np.array([1, 0, 0, 1, 1, 1, 0, 0, 0, 0], dtype=bool)  # 1 false positive, 1 false negative
    scores = presence_scores(predicted, truth)
    assert scores.accuracy == pytest.approx(0.8)
    assert scores.sensitivity == pytest.approx(0.75) and scores.specificity == pytest.approx(5 / 6)
    assert scores.num_slices == 10 and scores.num_tumour_slices == 4
    assert math.isnan(presence_scores(np.zeros(3, bool), np.zeros(3, bool)).sensitivity)


def test_a_tiny_classifier_learns_which_slices_hold_the_square(tmp_path: Path) -> None:
    cache = write_fake_cache(tmp_path / "cache", num_cases=3, size=32, slices=5)
    config = PresenceConfig(
        sequences=("t1", "t2"),
        base_width=4,
        input_size=32,
        epochs=2,
        steps_per_epoch=10,
        batch_size=8,
        seed=1,
        learning_rate=1e-2,
    )
    record = train_presence(cache, ["case0", "case2"], tmp_path / "presence", config, val_ids=["case1"], progress=False)
    assert record["status"] == "complete" and 1 <= record["result"]["best_epoch"] <= 2
    classifier = load_presence(tmp_path / "presence")
    from npcseg.preprocessing.cache import load_preprocessed

    case = load_preprocessed(cache, "case1")
    probabilities = classifier.probabilities(case.image)
    assert probabilities.shape == (5,)
    truth = case.label.reshape(5, -1).any(axis=1)
    assert presence_scores(probabilities >= 0.5, truth).accuracy == 1.0
    again = train_presence(cache, ["case0", "case2"], tmp_path / "presence", config, val_ids=["case1"], progress=False)
    assert again == record  # complete: not retrained
    with pytest.raises(ValueError, match="other settings"):
        train_presence(cache, ["case0", "case2"], tmp_path / "presence", dataclasses.replace(config, epochs=3))

"""The step learning-rate drop (SeqSeg's joint cascade training: 1e-3 -> 1e-4 after 25 epochs): the rate per epoch,
its effect on the optimiser, log.csv's learning_rate column, and a run interrupted before the drop that resumes
across it to the very weights of an uninterrupted run. Without the option nothing changes (old configs load)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook
from training_builders import TINY_DEU, blob_cache

from npcseg.config import config_from_dict, config_to_dict
from npcseg.training.config import TrainingConfig
from npcseg.training.run_folder import read_log
from npcseg.training.trainer import train

# 2 training cases x 4 slices, batch 2: 4 steps per epoch, 12 in all; the rate drops at the start of epoch 3.
CONFIG = TrainingConfig(
    model_options=TINY_DEU,
    learning_rate=3e-3,
    learning_rate_drop_epoch=2,
    learning_rate_drop_factor=0.1,
    epochs=3,
    batch_size=2,
    num_threads=1,
    checkpoint_every_steps=2,
    seed=4,
)


class _Crash(Exception):
    """Raised inside an optimiser step to interrupt a run the way a crash would (checkpoint_last.pt stays)."""


def test_the_rate_of_each_epoch() -> None:
    paper = TrainingConfig(learning_rate=1e-3, learning_rate_drop_epoch=25)
    assert [paper.learning_rate_at(epoch) for epoch in (0, 24)] == [1e-3, 1e-3]
    assert paper.learning_rate_at(25) == pytest.approx(1e-4, rel=1e-12)
    assert paper.learning_rate_at(199) == pytest.approx(1e-4, rel=1e-12)
    assert {TrainingConfig().learning_rate_at(epoch) for epoch in (0, 30, 500)} == {1e-4}  # default: constant


@pytest.mark.parametrize("changes", [{"learning_rate_drop_epoch": 0}, {"learning_rate_drop_factor": 0.0}])
def test_bad_schedules_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        TrainingConfig(**changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="learning_rate_drop_factor"):
        TrainingConfig(learning_rate_drop_factor=1.5)


def test_configs_written_before_the_option_load_unchanged() -> None:
    config = TrainingConfig(learning_rate=2e-4, epochs=7)
    old = {key: value for key, value in config_to_dict(config).items() if not key.startswith("learning_rate_drop")}
    loaded = config_from_dict(TrainingConfig, old)
    assert loaded == config and loaded.learning_rate_drop_epoch is None
    assert config_to_dict(loaded) == config_to_dict(config)


def test_a_run_resumed_across_the_drop_ends_with_the_weights_of_a_straight_run(tmp_path: Path) -> None:
    cache = blob_cache(tmp_path / "cache", ["a", "b", "c"], num_slices=4, size=32)
    train(cache, tmp_path / "straight", CONFIG, ["a", "b"], ["c"], progress=False)
    train(cache, tmp_path / "constant", CONFIG.with_changes(learning_rate_drop_epoch=None), ["a", "b"], ["c"], False)

    steps = 0

    def crash_at_step_7(optimizer: object, args: object, kwargs: object) -> None:
        nonlocal steps
        steps += 1
        if steps == 7:  # inside epoch 2, before the drop; the last checkpoint is step 6's
            raise _Crash

    handle = register_optimizer_step_pre_hook(crash_at_step_7)
    try:
        with pytest.raises(_Crash):
            train(cache, tmp_path / "resumed", CONFIG, ["a", "b"], ["c"], progress=False)
    finally:
        handle.remove()
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoint_last.pt", weights_only=True)
    assert checkpoint["step"] == 6 and checkpoint["epoch"] == 1
    assert train(cache, tmp_path / "resumed", CONFIG, ["a", "b"], ["c"], progress=False).resumed

    names = ("straight", "resumed", "constant")
    final = {name: torch.load(tmp_path / name / "checkpoint_last.pt", weights_only=True) for name in names}
    for key, tensor in final["straight"]["model"].items():
        torch.testing.assert_close(final["resumed"]["model"][key], tensor, rtol=0, atol=0, msg=key)
    straight = final["straight"]["model"]
    assert not all(torch.equal(final["constant"]["model"][key], tensor) for key, tensor in straight.items())
    assert final["resumed"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-4, rel=1e-12)
    assert final["constant"]["optimizer"]["param_groups"][0]["lr"] == 3e-3
    for name, rates in (("straight", [3e-3, 3e-3, 3e-4]), ("resumed", [3e-3, 3e-3, 3e-4]), ("constant", [3e-3] * 3)):
        assert [row["learning_rate"] for row in read_log(tmp_path / name)] == pytest.approx(rates, rel=1e-12), name


def test_a_comparison_folder_written_before_the_option_accepts_the_same_rows(tmp_path: Path) -> None:
    import yaml

    from npcseg.evaluation.comparison import COMPARISON_FILENAME, _claim, load_comparison

    table = tmp_path / "table.yaml"
    table.write_text(yaml.safe_dump({"title": "t", "base": {"num_folds": 2}, "rows": [{"name": "A"}]}))
    comparison = load_comparison([table])
    saved = comparison.to_dict()
    for row in saved["rows"]:  # as an older npcseg wrote it: no learning_rate_drop_* keys
        row["config"]["training"] = {
            key: value for key, value in row["config"]["training"].items() if not key.startswith("learning_rate_drop")
        }
    out = tmp_path / "out"
    out.mkdir()
    (out / COMPARISON_FILENAME).write_text(yaml.safe_dump(saved, sort_keys=False))
    _claim(out, comparison)  # the same settings: accepted
    changed = load_comparison([table], epochs=3)
    with pytest.raises(ValueError, match="epochs"):
        _claim(out, changed)

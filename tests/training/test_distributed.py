"""Data-parallel training: 2 gloo processes take the same steps as one process on the concatenated batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_distributed
import torch.multiprocessing as torch_multiprocessing
from training_builders import TINY_DEU, blob_cache
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.config import save_config
from npcseg.losses import build_loss
from npcseg.models import build_model
from npcseg.training.checkpoint import load_checkpoint
from npcseg.training.config import TrainingConfig
from npcseg.training.data_parallel import shard_positions, training_step, wrap_model
from npcseg.training.distributed import free_port, initialize, main, threads_per_process, train_distributed
from npcseg.training.run_folder import read_log
from npcseg.training.trainer import train

ADAM_RELATIVE = 0.1
BATCHES = (3, 1)  # an uneven split (2 + 1 slices), then a batch that leaves rank 1 with a weight-0 placeholder


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny DEU on 32 x 32 slices, SGD, Dice loss and a fixed batch of 3 slices (identical in every process).

    SGD, not the trainer's Adam: Adam's first step is about ``lr * sign(gradient)``, which turns the last-bit
    differences of a gradient near 0 (reduction order) into differences of up to ``lr``; SGD shows the gradients'
    agreement directly."""
    torch.manual_seed(0)
    model = build_model("deu", {**TINY_DEU, "sequences": ["t1", "t2"]})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(3, 2, 32, 32, generator=generator)
    labels = (torch.rand(3, 1, 32, 32, generator=generator) > 0.7).float()
    return model, optimizer, build_loss("dice"), images, labels


def _step_worker(rank: int, world_size: int, init_method: str, folder: Path) -> None:
    """One rank: the steps of ``BATCHES`` on its shards; saves its weights after each step."""
    torch.set_num_threads(1)
    context = initialize(rank, world_size, torch.device("cpu"), init_method)
    try:
        model, optimizer, loss_function, images, labels = _setup()
        parallel = wrap_model(model, context)
        for step, size in enumerate(BATCHES):
            positions = context.shard(size)
            value = training_step(
                parallel,
                optimizer,
                loss_function,
                images[positions or [0]],
                labels[positions or [0]],
                global_batch_size=size,
                num_own=len(positions),
                context=context,
            )
            torch.save({"model": model.state_dict(), "loss": value}, folder / f"rank{rank}_step{step}.pt")
    finally:
        torch_distributed.destroy_process_group()


def test_shards_cover_a_batch_once_with_sizes_differing_by_at_most_one() -> None:
    assert [shard_positions(5, rank, 2) for rank in range(2)] == [[0, 1, 2], [3, 4]]
    assert [shard_positions(1, rank, 3) for rank in range(3)] == [[0], [], []]
    for count in range(9):
        shards = [shard_positions(count, rank, 4) for rank in range(4)]
        assert [position for shard in shards for position in shard] == list(range(count))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert threads_per_process(2, requested=3) == 3 and threads_per_process(10**6) == 1
    with pytest.raises(ValueError, match="rank 2"):
        shard_positions(4, 2, 2)


def test_two_gloo_ranks_take_the_single_process_step_on_the_concatenated_batch(tmp_path: Path) -> None:
    init_method = f"tcp://127.0.0.1:{free_port()}"
    torch_multiprocessing.spawn(_step_worker, args=(2, init_method, tmp_path), nprocs=2, join=True)
    model, optimizer, loss_function, images, labels = _setup()
    for step, size in enumerate(BATCHES):
        expected_loss = training_step(
            model,
            optimizer,
            loss_function,
            images[:size],
            labels[:size],
            global_batch_size=size,
            num_own=size,
            context=None,
        )
        ranks = [torch.load(tmp_path / f"rank{rank}_step{step}.pt", weights_only=True) for rank in range(2)]
        for name, value in model.state_dict().items():
            assert torch.equal(ranks[0]["model"][name], ranks[1]["model"][name]), name  # identical on both ranks
            torch.testing.assert_close(ranks[0]["model"][name], value, rtol=0, atol=1e-6)
        assert ranks[0]["loss"] == pytest.approx(expected_loss, abs=1e-6) == ranks[1]["loss"]
    assert not torch.equal(model.state_dict()["head.weight"], _setup()[0].state_dict()["head.weight"])


def _config(**changes: object) -> TrainingConfig:
    settings: dict[str, object] = {
        "model_options": TINY_DEU,
        "learning_rate": 1e-3,
        "batch_size": 3,
        "epochs": 2,
        "num_threads": 1,
        "tumour_oversampling": 0.5,
        "checkpoint_every_steps": 0,
        **changes,
    }
    return TrainingConfig(**settings)  # type: ignore[arg-type]


def test_a_two_process_epoch_resumed_by_one_process_equals_a_single_process_run(tmp_path: Path) -> None:
    """Epoch 1 on 2 gloo processes, then the run "interrupted" and its epoch 2 resumed by one process: weights,
    sampler and augmentation state and the log match an uninterrupted single-process run; rank 0 alone wrote
    the same files as a single-process run."""
    cache = blob_cache(tmp_path / "cache", ["a", "b", "c"], num_slices=4, size=32)  # 8 slices: batches 3, 3, 2
    single = train(cache, tmp_path / "single", _config(), ["a", "b"], ["c"], progress=False)

    first = train_distributed(
        cache, tmp_path / "parallel", _config(epochs=1), ["a", "b"], ["c"], num_processes=2, device="cpu"
    )
    assert first.num_epochs == 1 and first.num_steps == 3 and not first.resumed
    record = json.loads((tmp_path / "parallel" / "run.json").read_text())
    assert record["status"] == "complete" and record["num_processes"] == 2 and record["sessions"] == 1
    assert sorted(path.name for path in (tmp_path / "parallel").iterdir()) == sorted(
        path.name for path in (tmp_path / "single").iterdir()
    )
    save_config(_config(), tmp_path / "parallel" / "config.yaml")  # the same run, asked for one more epoch
    (tmp_path / "parallel" / "run.json").write_text(json.dumps({**record, "status": "running"}))
    resumed = train(cache, tmp_path / "parallel", _config(), ["a", "b"], ["c"], progress=False)

    assert resumed.resumed and resumed.num_epochs == 2 and resumed.num_steps == single.num_steps == 6
    expected = load_checkpoint(tmp_path / "single" / "checkpoint_last.pt")
    actual = load_checkpoint(tmp_path / "parallel" / "checkpoint_last.pt")
    torch.manual_seed(0)
    initial = build_model("deu", _config().model_config()).state_dict()
    vector = {
        name: torch.cat([c["model"][key].flatten() for key in initial]) for name, c in (("e", expected), ("a", actual))
    }
    update = vector["e"] - torch.cat([value.flatten() for value in initial.values()])
    difference = vector["a"] - vector["e"]
    # Adam's first steps are about lr * sign(gradient): reduction-order differences of near-zero gradients (many on
    # 32 x 32 slices, where the deepest group norms see 1 x 1 maps) flip some of them. Measured here: difference /
    # update norm 0.024 after 6 steps; the same trainer with SGD in place of Adam agreed to 1.5e-8 (the step test
    # above checks the gradients themselves).
    assert float(difference.norm() / update.norm()) < ADAM_RELATIVE
    assert actual["sampler_state"] == expected["sampler_state"]
    assert torch.equal(actual["augmentation_rng"], expected["augmentation_rng"])
    for row_expected, row_actual in zip(read_log(tmp_path / "single"), read_log(tmp_path / "parallel"), strict=True):
        for column in ("train_loss", "val_loss", "val_dice"):
            assert row_actual[column] == pytest.approx(row_expected[column], abs=1e-4)


def test_more_processes_than_the_global_batch_is_refused(tmp_path: Path) -> None:
    cache = blob_cache(tmp_path / "cache", ["a", "b"], num_slices=2, size=32)
    with pytest.raises(ValueError, match="global batch of 1"):
        train_distributed(cache, tmp_path / "run", _config(batch_size=1), ["a"], ["b"], num_processes=2)
    assert not (tmp_path / "run").exists()


def test_the_cli_refuses_more_processes_than_the_batch_and_the_torchrun_entry_needs_torchrun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = blob_cache(tmp_path / "cache", ["a", "b"], num_slices=2, size=32)
    save_config(_config(batch_size=1), tmp_path / "train.yaml")
    options = ["train", "--cache", str(cache), "--out", str(tmp_path / "run"), "--config", str(tmp_path / "train.yaml")]
    result = CliRunner().invoke(app, [*options, "--nproc", "2", "--no-progress"])
    assert result.exit_code == 2 and "global batch of 1" in result.output
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit, match="torchrun"):
        main(["--cache", str(cache), "--out", str(tmp_path / "run")])

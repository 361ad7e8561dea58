"""The Q-learning agent: targets by hand, learning, target sync, replay ring, Algorithm 3, checkpoints."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
import torch

from npcseg.detection.agent import DQNAgent, QNetwork, ReplayBuffer
from npcseg.detection.boxes import NUM_ACTIONS
from npcseg.detection.config import DetectorConfig

STATE_SIZE = 6


def small_config(**changes: object) -> DetectorConfig:
    settings: dict[str, object] = {"hidden_sizes": (16,), "replay_size": 8, "batch_size": 2, "target_sync_steps": 3}
    return DetectorConfig(**{**settings, **changes})  # type: ignore[arg-type]


def test_q_network_layers() -> None:
    network = QNetwork(5, (7, 3))
    linears = [module for module in network.modules() if isinstance(module, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(5, 7), (7, 3), (3, NUM_ACTIONS)]
    assert network(torch.zeros(4, 5)).shape == (4, NUM_ACTIONS)
    assert QNetwork(5, ())(torch.zeros(1, 5)).shape == (1, NUM_ACTIONS)


def set_linear_target(agent: DQNAgent) -> None:
    """Target network with no hidden layer: Q_target(s', a) = s'[0] * (a + 1)."""
    agent.target = QNetwork(STATE_SIZE, ())
    with torch.no_grad():
        layer = agent.target.layers[0]
        assert isinstance(layer, torch.nn.Linear)
        layer.weight.zero_()
        layer.weight[:, 0] = torch.arange(1, NUM_ACTIONS + 1, dtype=torch.float32)
        layer.bias.zero_()


def test_targets_by_hand() -> None:
    agent = DQNAgent(small_config(gamma=0.6), STATE_SIZE)
    set_linear_target(agent)
    next_states = torch.zeros(2, STATE_SIZE)
    next_states[:, 0] = torch.tensor([2.0, 2.0])  # max_a' Q_target = 2 * 11 = 22
    targets = agent.targets(torch.tensor([1.0, -3.0]), next_states, torch.tensor([False, True]))
    assert targets.tolist() == pytest.approx([1.0 + 0.6 * 22.0, -3.0])  # terminal: the reward alone
    # the L1 loss against those targets
    states, actions = torch.randn(2, STATE_SIZE), torch.tensor([4, 10])
    with torch.no_grad():
        chosen = agent.q(states)[[0, 1], [4, 10]]
    loss = agent.loss(states, actions, torch.tensor([1.0, -3.0]), next_states, torch.tensor([False, True]))
    expected = ((chosen[0] - 14.2).abs() + (chosen[1] + 3.0).abs()) / 2
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def fill(buffer: ReplayBuffer, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        state = np.full(buffer.state_size, number, dtype=np.float32)
        buffer.add(state, number % NUM_ACTIONS, float(number), state + 0.5, number % 2 == 0)


def test_update_lowers_the_loss_on_a_fixed_batch() -> None:
    agent = DQNAgent(small_config(learning_rate=0.01, target_sync_steps=1000), STATE_SIZE)
    rng = np.random.default_rng(0)
    assert agent.update(rng) is None and agent.steps == 0  # the replay holds no batch yet
    fill(agent.replay, 2)
    batch = agent.replay.sample(2, rng)
    with torch.no_grad():
        before = float(agent.loss(*batch))
    losses = [agent.update(rng) for _ in range(30)]
    with torch.no_grad():
        after = float(agent.loss(*batch))
    assert losses[0] == pytest.approx(before, rel=1e-5)  # the batch is the whole replay
    assert after < 0.5 * before and agent.steps == 30


def test_target_network_syncs_exactly_every_n_steps() -> None:
    agent = DQNAgent(small_config(learning_rate=0.05, target_sync_steps=3), STATE_SIZE)
    fill(agent.replay, 4)
    rng = np.random.default_rng(1)
    initial = [value.clone() for value in agent.target.state_dict().values()]

    def target_equals_q() -> bool:
        return all(
            torch.equal(a, b)
            for a, b in zip(agent.target.state_dict().values(), agent.q.state_dict().values(), strict=True)
        )

    for step in range(1, 7):
        agent.update(rng)
        if step % 3 == 0:
            assert target_equals_q(), step
        else:
            assert not target_equals_q(), step
        if step < 3:
            assert all(torch.equal(a, b) for a, b in zip(agent.target.state_dict().values(), initial, strict=True))
    assert not any(parameter.requires_grad for parameter in agent.target.parameters())


def test_replay_ring_overwrites_the_oldest() -> None:
    buffer = ReplayBuffer(4, 3)
    fill(buffer, 3)
    assert len(buffer) == 3 and buffer.position == 3
    fill(buffer, 3, start=3)  # transitions 3, 4, 5: 3 fills slot 3, then 4 and 5 replace 0 and 1
    assert len(buffer) == 4 and buffer.position == 2
    assert buffer.rewards.tolist() == [4.0, 5.0, 2.0, 3.0]
    assert buffer.actions.tolist() == [4, 5, 2, 3] and buffer.terminals.tolist() == [True, False, True, False]
    assert buffer.next_states[:, 0].tolist() == [4.5, 5.5, 2.5, 3.5]
    states, actions, rewards, next_states, terminals = buffer.sample(4, np.random.default_rng(0))
    assert sorted(rewards.tolist()) == [2.0, 3.0, 4.0, 5.0]  # without replacement
    assert torch.equal(states[:, 0], rewards) and torch.equal(actions.float(), rewards)
    assert torch.equal(next_states[:, 0], rewards + 0.5) and terminals.dtype == torch.bool
    with pytest.raises(ValueError, match="cannot sample 5"):
        buffer.sample(5, np.random.default_rng(0))


def test_algorithm_3_frequencies() -> None:
    agent = DQNAgent(small_config(), STATE_SIZE)
    state = np.ones(STATE_SIZE, dtype=np.float32)
    greedy = agent.greedy(state)
    assert greedy == int(np.argmax(agent.q_values(state)))
    rng = np.random.default_rng(0)
    assert {agent.choose(state, 7, 1.0, 1.0, rng) for _ in range(200)} == {(7, "prior")}
    assert {agent.choose(state, 7, 0.0, 0.0, rng) for _ in range(200)} == {(greedy, "greedy")}
    randoms = [agent.choose(state, 7, 0.0, 1.0, rng) for _ in range(5500)]
    assert {how for _, how in randoms} == {"random"}
    counts = Counter(action for action, _ in randoms)
    assert set(counts) == set(range(NUM_ACTIONS)) and all(400 < count < 600 for count in counts.values())
    mixed = Counter(how for _, how in (agent.choose(state, 7, 0.5, 0.4, rng) for _ in range(10000)))
    assert mixed["prior"] == pytest.approx(5000, abs=300)  # eps_priori
    assert mixed["random"] == pytest.approx(2000, abs=250)  # (1 - eps_priori) * eps
    assert mixed["greedy"] == pytest.approx(3000, abs=250)  # (1 - eps_priori) * (1 - eps)


def test_state_dict_round_trip_with_weights_only_load() -> None:
    agent = DQNAgent(small_config(learning_rate=0.05), STATE_SIZE)
    fill(agent.replay, 5)
    rng = np.random.default_rng(2)
    for _ in range(4):
        agent.update(rng)
    stream = io.BytesIO()
    torch.save(agent.state_dict(), stream)
    stream.seek(0)
    restored = DQNAgent(small_config(learning_rate=0.05, seed=9), STATE_SIZE)
    restored.load_state_dict(torch.load(stream, weights_only=True))
    assert restored.steps == 4 and len(restored.replay) == 5 and restored.replay.position == 5
    for name in ("states", "actions", "rewards", "next_states", "terminals"):
        assert torch.equal(getattr(restored.replay, name), getattr(agent.replay, name)), name
    states = np.random.default_rng(3).normal(size=(20, STATE_SIZE)).astype(np.float32)
    assert [restored.greedy(state) for state in states] == [agent.greedy(state) for state in states]
    # training continues identically (optimiser momentum and target network restored)
    losses = [agent.update(np.random.default_rng(4)) for _ in range(3)]
    assert [restored.update(np.random.default_rng(4)) for _ in range(3)] == losses
    for a, b in zip(agent.target.state_dict().values(), restored.target.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="does not fit"):
        ReplayBuffer(8, 7).load_state_dict(agent.replay.state_dict())


def test_agent_initialisation_follows_the_seed() -> None:
    first, again = DQNAgent(small_config(), STATE_SIZE), DQNAgent(small_config(), STATE_SIZE)
    other = DQNAgent(small_config(seed=1), STATE_SIZE)
    weight = "layers.0.weight"
    assert torch.equal(first.q.state_dict()[weight], again.q.state_dict()[weight])
    assert not torch.equal(first.q.state_dict()[weight], other.q.state_dict()[weight])
    assert torch.equal(first.target.state_dict()[weight], first.q.state_dict()[weight])
    group, config = first.optimizer.param_groups[0], DetectorConfig()
    assert isinstance(first.optimizer, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (5e-4, 0.9, 4e-4)
    assert (config.learning_rate, config.momentum, config.weight_decay) == (5e-4, 0.9, 4e-4)

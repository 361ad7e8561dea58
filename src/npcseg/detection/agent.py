"""The deep-Q-learning agent: Q-network, experience replay, Algorithm 3 exploration, target updates (SeqSeg;
METHODS.md, method 2).

* :class:`QNetwork` -- fully connected layers with ReLU on the state, one Q value per action (the paper gives no
  sizes; ``config.hidden_sizes``, ours 512-512).
* :class:`ReplayBuffer` -- the last ``replay_size`` (16,384) transitions, oldest overwritten first; batches are drawn
  uniformly without replacement.
* :class:`DQNAgent` -- Algorithm 3 (:meth:`DQNAgent.choose`): with probability ``eps_priori`` the prior-knowledge
  action (Algorithm 2, given by the environment), else with probability ``eps`` a uniformly random action among all
  11 (the terminal one included; the paper does not restrict it), else the greedy action (ties: smallest index).
  :meth:`DQNAgent.update` is one SGD step (momentum 0.9, weight decay 4e-4, lr 5e-4) on a batch of 128 with the L1
  loss between ``Q(s, a)`` and ``q' = r`` for terminal transitions, ``r + gamma * max_a' Q_target(s', a')``
  otherwise (gamma 0.6); the target network is a copy of the Q-network refreshed every ``target_sync_steps``
  (1,000) optimiser steps. "Terminal" means the terminal action was taken; an episode cut at ``max_steps`` is not
  terminal (its last state is still bootstrapped), our reading of "q' = r for the terminal action", unless
  ``reward.judge_step_limit`` judges that last box like a terminal action (then it is stored as terminal).

Everything in :meth:`DQNAgent.state_dict` is tensors and plain numbers, so a checkpoint loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from npcseg.detection.boxes import NUM_ACTIONS
from npcseg.detection.config import DetectorConfig


class QNetwork(nn.Module):
    """Fully connected Q-network: state ``(B, state_size)`` -> Q values ``(B, num_actions)``.

    Args:
        state_size: length of a state.
        hidden_sizes: widths of the hidden Linear + ReLU layers (may be empty: a linear Q function).
        num_actions: number of actions (11).
    """

    def __init__(self, state_size: int, hidden_sizes: Sequence[int], num_actions: int = NUM_ACTIONS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = state_size
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        layers.append(nn.Linear(width, num_actions))
        self.layers = nn.Sequential(*layers)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.layers(states)


class ReplayBuffer:
    """A ring buffer of transitions ``(s, a, r, s', terminal)`` for experience replay.

    Memory: two float32 states per slot, ``capacity * 2 * state_size * 4`` bytes -- with the defaults (16,384 slots,
    ResNet-18 features: ``2 * 512 + 4 * 11 = 1068`` values) about 140 MB, allocated up front.

    Args:
        capacity: slots; once full, each new transition overwrites the oldest.
        state_size: length of a state.
    """

    def __init__(self, capacity: int, state_size: int) -> None:
        if capacity < 1 or state_size < 1:
            raise ValueError(f"capacity and state_size must be positive, got {capacity} and {state_size}")
        self.capacity = capacity
        self.state_size = state_size
        self.states = torch.zeros((capacity, state_size), dtype=torch.float32)
        self.next_states = torch.zeros((capacity, state_size), dtype=torch.float32)
        self.actions = torch.zeros(capacity, dtype=torch.int64)
        self.rewards = torch.zeros(capacity, dtype=torch.float32)
        self.terminals = torch.zeros(capacity, dtype=torch.bool)
        self.position = 0  # slot the next transition goes to
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, state: np.ndarray, action: int, reward: float, next_state: np.ndarray, terminal: bool) -> None:
        """Store one transition (overwriting the oldest when full)."""
        slot = self.position
        self.states[slot] = torch.as_tensor(state, dtype=torch.float32)
        self.next_states[slot] = torch.as_tensor(next_state, dtype=torch.float32)
        self.actions[slot] = int(action)
        self.rewards[slot] = float(reward)
        self.terminals[slot] = bool(terminal)
        self.position = (slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``batch_size`` distinct stored transitions drawn uniformly by ``rng``: ``(states (B, S), actions (B,)
        int64, rewards (B,), next_states (B, S), terminals (B,) bool)``.

        Raises:
            ValueError: fewer than ``batch_size`` transitions are stored.
        """
        if batch_size > self.size:
            raise ValueError(f"cannot sample {batch_size} transitions from a replay buffer holding {self.size}")
        indices = torch.from_numpy(rng.choice(self.size, size=batch_size, replace=False).astype(np.int64))
        return (
            self.states[indices],
            self.actions[indices],
            self.rewards[indices],
            self.next_states[indices],
            self.terminals[indices],
        )

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions (only the filled slots) and the ring position, as tensors and ints."""
        filled = slice(0, self.size)
        return {
            "capacity": self.capacity,
            "state_size": self.state_size,
            "position": self.position,
            "size": self.size,
            "states": self.states[filled].clone(),
            "next_states": self.next_states[filled].clone(),
            "actions": self.actions[filled].clone(),
            "rewards": self.rewards[filled].clone(),
            "terminals": self.terminals[filled].clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the capacity and state size must be this buffer's)."""
        if (int(state["capacity"]), int(state["state_size"])) != (self.capacity, self.state_size):
            raise ValueError(
                f"replay buffer state of capacity {state['capacity']} x {state['state_size']} does not fit a buffer "
                f"of {self.capacity} x {self.state_size}"
            )
        size = int(state["size"])
        for name in ("states", "next_states", "actions", "rewards", "terminals"):
            getattr(self, name)[:size] = state[name]
        self.size = size
        self.position = int(state["position"])


class DQNAgent:
    """The Q-learning agent of the box detector.

    Args:
        config: detector settings (``hidden_sizes``, ``learning_rate``, ``momentum``, ``weight_decay``,
            ``replay_size``, ``batch_size``, ``gamma``, ``target_sync_steps``, ``seed``).
        state_size: length of a state (``BoxEnv.state_size``).

    Attributes:
        q: the Q-network being trained.
        target: the target network (a copy of ``q`` from the last sync; never trained directly).
        optimizer: SGD on ``q``.
        replay: the experience replay buffer.
        steps: optimiser steps done.
    """

    def __init__(self, config: DetectorConfig, state_size: int) -> None:
        self.config = config
        self.state_size = state_size
        with torch.random.fork_rng(devices=[]):  # initialisation from the seed, global torch state untouched
            torch.manual_seed(config.seed)
            self.q = QNetwork(state_size, config.hidden_sizes)
        self.target = copy.deepcopy(self.q)
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.SGD(
            self.q.parameters(), lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.replay = ReplayBuffer(config.replay_size, state_size)
        self.steps = 0

    def q_values(self, state: np.ndarray) -> np.ndarray:
        """``(11,)`` Q values of one state."""
        with torch.no_grad():
            return self.q(torch.as_tensor(state, dtype=torch.float32)[None])[0].numpy()

    def greedy(self, state: np.ndarray) -> int:
        """The action with the highest Q value (ties: the smallest index)."""
        return int(np.argmax(self.q_values(state)))

    def choose(
        self, state: np.ndarray, prior: int, eps_priori: float, eps: float, rng: np.random.Generator
    ) -> tuple[int, str]:
        """Algorithm 3: ``(action, how)`` with ``how`` one of ``"prior"``, ``"random"``, ``"greedy"``.

        Args:
            state: the current state.
            prior: the prior-knowledge action (Algorithm 2) for the current box.
            eps_priori: probability of taking ``prior``.
            eps: probability of a uniformly random action when ``prior`` is not taken.
            rng: the random generator (one or two uniform draws, plus one integer for a random action).
        """
        if rng.random() < eps_priori:
            return int(prior), "prior"
        if rng.random() < eps:
            return int(rng.integers(NUM_ACTIONS)), "random"
        return self.greedy(state), "greedy"

    def targets(self, rewards: torch.Tensor, next_states: torch.Tensor, terminals: torch.Tensor) -> torch.Tensor:
        """``q'``: ``r`` where ``terminals``, else ``r + gamma * max_a' Q_target(s', a')`` (shape ``(B,)``)."""
        with torch.no_grad():
            next_best = self.target(next_states).max(dim=1).values
        return rewards + self.config.gamma * next_best * (~terminals).to(rewards.dtype)

    def loss(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_states: torch.Tensor,
        terminals: torch.Tensor,
    ) -> torch.Tensor:
        """Mean L1 distance between ``Q(s, a)`` and the targets ``q'`` of a batch (differentiable in ``q``)."""
        chosen = self.q(states).gather(1, actions[:, None])[:, 0]
        return functional.l1_loss(chosen, self.targets(rewards, next_states, terminals))

    def sync_target(self) -> None:
        """Copy the Q-network's weights into the target network."""
        self.target.load_state_dict(self.q.state_dict())

    def update(self, rng: np.random.Generator) -> float | None:
        """One SGD step on a replay batch drawn by ``rng``; ``None`` (nothing done) until the replay holds a batch.

        After the step, when ``steps`` reaches a multiple of ``target_sync_steps``, the target network is synced.

        Returns:
            the batch's L1 loss before the step.
        """
        if len(self.replay) < self.config.batch_size:
            return None
        loss = self.loss(*self.replay.sample(self.config.batch_size, rng))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        if self.steps % self.config.target_sync_steps == 0:
            self.sync_target()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimiser, replay buffer and step count (tensors and plain data only)."""
        return {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": self.replay.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (same ``state_size`` and config)."""
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.steps = int(state["steps"])

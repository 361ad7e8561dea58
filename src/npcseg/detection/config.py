"""Settings of the deep-Q-learning box detector (SeqSeg instance level; METHODS.md, method 2, Algorithms 1-3).

Paper values are marked "paper"; values the paper does not give are ours and say so. Saved as the detector run's
``config.yaml``; a rerun into the same folder must have equal settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RewardConfig:
    """Thresholds of the reward (Algorithm 1) and of the prior-knowledge action (Algorithm 2)."""

    tau_h: float = 0.9
    """A zoom toward a box it does not touch yet is judged by distance while the box stays taller than tau_h times
    the target's height (paper 0.9); the prior-knowledge action zooms while the box is taller than g / tau_h."""
    tau_w: float = 0.9
    """The same for widths (paper 0.9)."""
    tau_recall: float = 0.95
    """The terminal action is a success when recall(box, target) > tau_recall ... (paper 0.95)."""
    tau_iou: float = 0.5
    """... and IoU(box, target) > tau_iou (paper 0.5)."""
    tau_distance: float = 0.125
    """The prior-knowledge action shifts while the centres are farther apart than this fraction of the target box's
    diagonal (paper 1/8)."""
    terminal_reward: float = 3.0
    """Reward of a successful terminal action (minus this for a failed one); the paper says only positive /
    negative, 3 is the usual value of active box search (Caicedo and Lazebnik 2015); ours."""
    judge_step_limit: bool = False
    """Ours (the paper does not say): the box an episode ends on at the step limit is judged like a terminal
    action (+-terminal_reward added to the last step's reward) and that transition is not bootstrapped. False: the
    cut is a time limit only (its last state is bootstrapped), so an agent that never stops is never judged."""

    def __post_init__(self) -> None:
        for name in ("tau_h", "tau_w", "tau_recall"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0 <= self.tau_iou < 1 or self.tau_distance <= 0 or self.terminal_reward <= 0:
            raise ValueError("tau_iou must be in [0, 1), tau_distance and terminal_reward positive")


@dataclass(frozen=True)
class ExplorationConfig:
    """Algorithm 3: prior-knowledge action with probability eps_priori, else random with probability eps, else
    greedy; both decay after every epoch."""

    eps_priori: float = 0.8
    """Start probability of the prior-knowledge action (paper 0.8; 0 gives plain eps-greedy)."""
    eps_priori_decay: float = 0.2
    """Subtracted from eps_priori after every epoch, floored at 0 (paper 0.2)."""
    eps: float = 1.0
    """Start probability of a random action when the prior-knowledge action is not taken (paper 1.0)."""
    eps_decay: float = 0.1
    """Subtracted from eps after every epoch (paper 0.1) ..."""
    eps_min: float = 0.1
    """... down to this floor (paper 0.1)."""

    def __post_init__(self) -> None:
        for name in ("eps_priori", "eps", "eps_min"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.eps_priori_decay < 0 or self.eps_decay < 0:
            raise ValueError("the decays must not be negative")

    def at_epoch(self, epoch: int) -> tuple[float, float]:
        """(eps_priori, eps) during ``epoch`` (0-based: epoch 0 uses the start values)."""
        priori = max(self.eps_priori - epoch * self.eps_priori_decay, 0.0)
        eps = max(self.eps - epoch * self.eps_decay, self.eps_min)
        return priori, eps


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that decides a detector run's result."""

    sequences: tuple[str, ...] = ("t1", "t1c", "t2")
    """Input channels, picked by name from the preprocessed cache (paper: T1, T1c, T2)."""
    encoder_depth: int = 18
    """Frozen ResNet backbone of the state (18, 34 or 50; the paper uses an ImageNet ResNet-50; ours 18 for CPU)."""
    backbone_width: int = 64
    """Channels of the backbone's first stage (64 = torchvision's ResNet widths, needed to load ImageNet weights;
    smaller values only for fast tests)."""
    backbone_weights: str | None = None
    """Local file with the backbone's weights: torchvision-named ResNet weights, or a segmentation run's checkpoint
    whose network has an ``encoder`` (RANet); ``None`` = random initialisation (fixed by ``seed``)."""
    feature_grid: int = 1
    """The backbone's deepest level is average-pooled to grid x grid cells per image and per box (paper: a global
    pool, 1; 2 keeps where in the box the features come from, which a global pool loses)."""
    input_size: int = 64
    """Side in pixels the whole slice and every box crop are resized to before the backbone (paper 224; ours)."""
    history_length: int = 4
    """h: the last h actions, one-hot, are part of the state (paper: h, value not given; ours 4)."""
    box_in_state: bool = False
    """Append the box's edges (top, left, bottom, right as fractions of the slice) to the state (ours; the paper's
    state has features and history only, so the agent cannot tell a large box from a small one when the content
    looks alike)."""
    start_fraction: float = 0.42
    """The start box is centred with this fraction of the slice's height and width (paper 0.42)."""
    max_steps: int = 15
    """An episode ends at the terminal action or after this many steps (paper 15)."""
    zoom: float = 0.75
    """A zoom shrinks the box to this fraction of its size (paper 3/4)."""
    shift: float = 0.25
    """A shift moves the box by this fraction of its size (paper 1/4)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Algorithm 1 / 2 thresholds."""
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    """Algorithm 3 probabilities."""
    hidden_sizes: tuple[int, ...] = (512, 512)
    """Widths of the Q-network's hidden fully connected layers (paper: fully connected, sizes not given; ours)."""
    replay_size: int = 16384
    """Transitions kept for experience replay (paper 16,384)."""
    target_sync_steps: int = 1000
    """Optimiser steps between copies of the Q-network into the target network (paper 1,000)."""
    learning_rate: float = 5e-4
    """SGD learning rate (paper 0.0005)."""
    momentum: float = 0.9
    """SGD momentum (paper 0.9)."""
    weight_decay: float = 4e-4
    """L2 weight decay (paper 0.0004)."""
    batch_size: int = 128
    """Transitions per optimiser step (paper 128)."""
    gamma: float = 0.6
    """Discount of the target r + gamma * max Q_target(s', a') (paper 0.6)."""
    epochs: int = 50
    """Passes over the training slices, one episode per tumour slice each (paper: at most 50)."""
    updates_per_step: int = 1
    """Optimiser steps per environment step once the replay holds a batch (ours; 1 = classic DQN)."""
    seed: int = 0
    """Seed of the backbone and Q-network initialisation, the episode order and the exploration."""
    num_threads: int = 0
    """CPU threads for torch; 0 keeps torch's default."""

    def __post_init__(self) -> None:
        if self.encoder_depth not in (18, 34, 50):
            raise ValueError(f"encoder_depth must be 18, 34 or 50, got {self.encoder_depth}")
        if self.backbone_width < 1:
            raise ValueError(f"backbone_width must be positive, got {self.backbone_width}")
        if self.feature_grid < 1 or self.input_size < 32 * self.feature_grid:
            raise ValueError("feature_grid must be >= 1 and input_size at least 32 x feature_grid")
        if self.input_size < 32 or self.history_length < 0 or self.max_steps < 1 or self.epochs < 1:
            raise ValueError("input_size >= 32, history_length >= 0, max_steps >= 1 and epochs >= 1 are required")
        if not 0 < self.zoom < 1 or not 0 < self.shift < 1 or not 0 < self.start_fraction <= 1:
            raise ValueError("zoom and shift must be in (0, 1), start_fraction in (0, 1]")
        if self.batch_size < 1 or self.replay_size < self.batch_size or self.target_sync_steps < 1:
            raise ValueError("batch_size >= 1, replay_size >= batch_size and target_sync_steps >= 1 are required")
        if not 0 <= self.gamma < 1 or self.learning_rate <= 0:
            raise ValueError("gamma must be in [0, 1) and learning_rate positive")

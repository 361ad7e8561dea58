"""Running a trained box detector: greedy episodes from the start box (SeqSeg instance level; METHODS.md, method 2).

An episode on a slice starts from the centred start box (42 %) and takes the action of highest Q value (ties: the
smallest index) until the terminal action or ``max_steps`` (15) steps; the box at that point is the detection.
:func:`load_detector` rebuilds a detector from a run folder (``config.yaml`` + ``detector.pt``, read with
``weights_only=True``): the Q-network's weights come from ``detector.pt``; the frozen backbone is rebuilt from the
config's seed (random initialisation, checked against a checksum stored at training time) or taken from
``detector.pt`` when the run loaded backbone weights from a file (so the run does not depend on that file later).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from npcseg.config import load_config
from npcseg.detection.agent import QNetwork
from npcseg.detection.boxes import Box
from npcseg.detection.config import DetectorConfig
from npcseg.detection.environment import BoxEnv, DetectionSlice, state_size
from npcseg.detection.features import Backbone, build_backbone
from npcseg.detection.run_folder import CONFIG_FILENAME, DETECTOR_FILENAME

DETECTOR_FORMAT = "npcseg-dqn-detector"


@dataclass(frozen=True)
class DetectionResult:
    """One greedy episode.

    Attributes:
        box: the final box (the detection), in pixels of the slice.
        boxes: the start box, then the box after each action (``len(actions) + 1`` boxes).
        actions: the actions taken, in order.
        terminated: whether the agent took the terminal action (else it was stopped at ``max_steps``).
    """

    box: Box
    boxes: tuple[Box, ...]
    actions: tuple[int, ...]
    terminated: bool


def greedy_episode(env: BoxEnv, policy: Callable[[np.ndarray], int], index: int) -> DetectionResult:
    """Run ``policy`` (state -> action) on ``env.slices[index]`` from the start box to the end of the episode."""
    state, info = env.reset(options={"index": index})
    boxes: list[Box] = [info["box"]]
    actions: list[int] = []
    terminated = truncated = False
    while not (terminated or truncated):
        action = int(policy(state))
        state, _, terminated, truncated, info = env.step(action)
        actions.append(action)
        boxes.append(info["box"])
    return DetectionResult(box=boxes[-1], boxes=tuple(boxes), actions=tuple(actions), terminated=bool(terminated))


def backbone_checksum(backbone: Backbone) -> float:
    """Sum of the absolute values of every backbone parameter and buffer (float64): a fingerprint of its weights."""
    with torch.no_grad():
        return float(sum(value.detach().double().abs().sum() for value in backbone.encoder.state_dict().values()))


class Detector:
    """A trained deep-Q-learning box detector.

    Args:
        config: the run's settings.
        backbone: the frozen feature backbone.
        q_network: the trained Q-network.
    """

    def __init__(self, config: DetectorConfig, backbone: Backbone, q_network: QNetwork) -> None:
        self.config = config
        self.backbone = backbone
        self.q_network = q_network.eval()

    @property
    def sequences(self) -> tuple[str, ...]:
        """Input channels, in order (names of the cache's sequences)."""
        return self.config.sequences

    def greedy(self, state: np.ndarray) -> int:
        """The action of highest Q value in ``state`` (ties: the smallest index)."""
        with torch.no_grad():
            values = self.q_network(torch.as_tensor(state, dtype=torch.float32)[None])[0]
        return int(np.argmax(values.numpy()))

    def detect(self, image: np.ndarray) -> DetectionResult:
        """The greedy episode on one slice ``image`` float32 ``(C, H, W)`` (channels in :attr:`sequences` order)."""
        return self.detect_slices([DetectionSlice(np.asarray(image, dtype=np.float32), None, "", 0)])[0]

    def detect_slices(self, slices: Sequence[DetectionSlice]) -> list[DetectionResult]:
        """The greedy episode on each slice (their targets, if any, are not used)."""
        if not slices:
            return []
        env = BoxEnv(slices, self.backbone, self.config, allow_unlabelled=True)
        return [greedy_episode(env, self.greedy, index) for index in range(len(slices))]


def detector_payload(config: DetectorConfig, backbone: Backbone, q_network: QNetwork, **facts: Any) -> dict[str, Any]:
    """The content of ``detector.pt`` (tensors and plain data only)."""
    return {
        "format": DETECTOR_FORMAT,
        "q": {key: value.detach().clone() for key, value in q_network.state_dict().items()},
        "hidden_sizes": list(config.hidden_sizes),
        "in_channels": backbone.in_channels,
        "feature_size": backbone.feature_size,
        "backbone_checksum": backbone_checksum(backbone),
        "backbone": None if config.backbone_weights is None else backbone.encoder.state_dict(),
        **facts,
    }


def load_detector(run_dir: Path) -> Detector:
    """The detector of a finished run folder.

    Raises:
        FileNotFoundError: the folder has no ``config.yaml`` or no ``detector.pt`` (training not finished).
        ValueError: ``detector.pt`` is not a detector file, or the backbone rebuilt from the seed differs from the
            one the Q-network was trained on (e.g. another torch version initialises differently).
    """
    run_dir = Path(run_dir)
    config_path, weights_path = run_dir / CONFIG_FILENAME, run_dir / DETECTOR_FILENAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not a detector run folder (no {CONFIG_FILENAME})")
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: the detector run has not finished training (no {DETECTOR_FILENAME})")
    config = load_config(DetectorConfig, config_path)
    try:
        payload = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{weights_path}: not a readable detector file: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != DETECTOR_FORMAT:
        raise ValueError(f"{weights_path}: not an npcseg detector file")
    in_channels = int(payload["in_channels"])
    if payload["backbone"] is None:
        backbone = build_backbone(config, in_channels, base_width=config.backbone_width)
        if not np.isclose(backbone_checksum(backbone), float(payload["backbone_checksum"]), rtol=1e-9, atol=0.0):
            raise ValueError(
                f"{weights_path}: the backbone rebuilt from seed {config.seed} differs from the one the detector was "
                "trained with (another torch version?); retrain the detector"
            )
    else:
        from npcseg.models.resnet import ResNetEncoder

        state = payload["backbone"]
        width = int(state["conv1.weight"].shape[0])
        encoder = ResNetEncoder(config.encoder_depth, in_channels, base_width=width)
        encoder.load_state_dict(state)
        backbone = Backbone(encoder, config.feature_grid)
    q_network = QNetwork(state_size(backbone.feature_size, config), config.hidden_sizes)
    q_network.load_state_dict(payload["q"])
    return Detector(config, backbone, q_network)

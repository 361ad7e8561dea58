"""Do the detector's state features tell where the tumour is on unseen patients? An imitation probe.

Behaviour cloning of Algorithm 2 (the prior-knowledge action, which reads the ground truth): the states the agent
would see along the prior policy's episodes on the training slices (plus episodes with 30 % random moves, so that
off-track states are seen too) are labelled with the prior action, a small MLP learns state -> action, and its
greedy rollouts are scored on the held-out slices (recall / IoU of the final box, as ``npcseg detect ablation``).
If a policy that imitates its teacher cannot find the tumour from these features, a Q-function learned from the
same features by reinforcement cannot either, whatever the number of epochs.

State sources (``--state``):
  encoder   the detector's own state (``BoxEnv``: global + box-crop features of the frozen backbone + history),
            with ``--backbone`` (a presence or segmentation run, or ResNet weights) and ``--grid``;
  map       a segmentation run's tumour probability map (``--map-run``) average-pooled to grid x grid over the
            whole slice and over the box, + the history and the box's edges (not the paper's state: a probe of
            how far the best perception available here would carry a policy).

Usage:
  .venv/bin/python benchmarks/detector_imitation_probe.py --cache OUT/cache --splits OUT/tables/splits.json \\
      --fold 0 --state encoder --backbone OUT/detection/presence --grid 2
  .venv/bin/python benchmarks/detector_imitation_probe.py ... --state map --map-run OUT/tables/ranet-dbw/fold_0 --grid 4
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as functional

from npcseg.detection.boxes import NUM_ACTIONS, TERMINAL_ACTION, Box, apply_action, initial_box
from npcseg.detection.config import DetectorConfig
from npcseg.detection.environment import BoxEnv, DetectionSlice, detection_slices, history_one_hot
from npcseg.detection.features import build_backbone, resize_crop
from npcseg.detection.heatmap import HeatmapDetector
from npcseg.detection.reward import prior_action
from npcseg.detection.scores import DetectionSummary, score_boxes

StateOf = Callable[[int, Box, list[int]], np.ndarray]
"""(slice index, box, history most recent first) -> state."""


def encoder_states(slices: list[DetectionSlice], config: DetectorConfig) -> StateOf:
    """The detector's own observation, through a BoxEnv (features cached per slice)."""
    env = BoxEnv(slices, build_backbone(config, len(config.sequences)), config)

    def state(index: int, box: Box, history: list[int]) -> np.ndarray:  # BoxEnv.observation's layout
        features = env.slice_features(index)
        parts = [features.global_features, features.crop_features(box), history_one_hot(history, config.history_length)]
        return np.concatenate(parts).astype(np.float32)

    return state


def map_states(slices: list[DetectionSlice], run: Path, grid: int, history_length: int) -> StateOf:
    """Pooled probability maps of the whole slice and of the box, the history and the box's edges."""
    detector = HeatmapDetector(run)
    maps = detector.probabilities(slices)
    whole = [functional.adaptive_avg_pool2d(torch.from_numpy(m)[None, None], grid).flatten().numpy() for m in maps]

    def state(index: int, box: Box, history: list[int]) -> np.ndarray:
        height, width = maps[index].shape
        crop = torch.from_numpy(resize_crop(maps[index][None], box, 8 * grid))[None]
        pooled = functional.adaptive_avg_pool2d(crop, grid).flatten().numpy()
        edges = np.array([box.top / height, box.left / width, box.bottom / height, box.right / width])
        return np.concatenate([whole[index], pooled, history_one_hot(history, history_length), edges]).astype(
            np.float32
        )

    return state


def episodes(
    slices: list[DetectionSlice],
    state: StateOf,
    config: DetectorConfig,
    choose: Callable[[np.ndarray, int], int],
) -> tuple[list[np.ndarray], list[int], list[Box]]:
    """Run one episode per slice where ``choose(state, prior action)`` picks the move; returns the visited states,
    their prior-action labels and the final boxes."""
    states, labels, finals = [], [], []
    for index, item in enumerate(slices):
        shape = item.shape
        box, history = initial_box(shape, config.start_fraction), []
        for _ in range(config.max_steps):
            current = state(index, box, history)
            prior = prior_action(box, item.target, shape, config)
            states.append(current)
            labels.append(prior)
            action = choose(current, prior)
            if action == TERMINAL_ACTION:
                break
            box = apply_action(box, action, shape, zoom=config.zoom, shift=config.shift)
            history.insert(0, action)
        finals.append(box)
    return states, labels, finals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True, help="splits.json; train / held-out = one fold")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--state", choices=("encoder", "map"), default="encoder")
    parser.add_argument("--backbone", type=Path, help="--state encoder: the frozen backbone's weights")
    parser.add_argument("--map-run", type=Path, help="--state map: a segmentation run trained on the fold's cases")
    parser.add_argument("--grid", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    fold = json.loads(args.splits.read_text())[args.fold]
    config = DetectorConfig(
        feature_grid=args.grid if args.state == "encoder" else 1,  # the map state pools the map itself
        backbone_weights=None if args.backbone is None else str(args.backbone),
        input_size=64,
    )
    train = detection_slices(args.cache, fold["train"], config.sequences)
    held_out = detection_slices(args.cache, fold["val"], config.sequences)
    started = time.perf_counter()
    if args.state == "encoder":
        train_state, test_state = encoder_states(train, config), encoder_states(held_out, config)
    else:
        if args.map_run is None:
            parser.error("--state map needs --map-run")
        train_state = map_states(train, args.map_run, args.grid, config.history_length)
        test_state = map_states(held_out, args.map_run, args.grid, config.history_length)

    def noisy(_: np.ndarray, prior: int) -> int:
        return int(rng.integers(NUM_ACTIONS - 1)) if rng.random() < 0.3 else prior

    clean_states, clean_labels, _ = episodes(train, train_state, config, lambda _, prior: prior)
    noisy_states, noisy_labels, _ = episodes(train, train_state, config, noisy)
    inputs = np.stack(clean_states + noisy_states)
    labels = torch.tensor(clean_labels + noisy_labels)
    mean, scale = inputs.mean(axis=0), inputs.std(axis=0) + 1e-6
    features = torch.from_numpy((inputs - mean) / scale).float()
    network = torch.nn.Sequential(
        torch.nn.Linear(inputs.shape[1], 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, NUM_ACTIONS),
    )
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(args.epochs):
        order = torch.randperm(len(features))
        for start in range(0, len(order), 128):
            batch = order[start : start + 128]
            loss = functional.cross_entropy(network(features[batch]), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    network.eval()

    def policy(state: np.ndarray, _: int) -> int:
        with torch.no_grad():
            return int(network(torch.from_numpy((state - mean) / scale).float()[None]).argmax())

    with torch.no_grad():
        train_accuracy = float((network(features).argmax(dim=1) == labels).float().mean())
    test_states, test_labels, boxes = episodes(held_out, test_state, config, policy)
    test_accuracy = float(np.mean([policy(s, 0) == label for s, label in zip(test_states, test_labels, strict=True)]))
    summary: DetectionSummary = score_boxes(boxes, [item.target for item in held_out if item.target is not None])
    _, _, prior_boxes = episodes(held_out, test_state, config, lambda _, prior: prior)
    teacher = score_boxes(prior_boxes, [item.target for item in held_out if item.target is not None])
    what = f"{args.state}" + (f" ({args.backbone})" if args.state == "encoder" else f" ({args.map_run})")
    print(f"state: {what}, grid {args.grid}; {len(train)} training / {len(held_out)} held-out tumour slices")
    print(f"imitation accuracy of the prior action: training {train_accuracy:.3f}, held-out {test_accuracy:.3f}")
    print(
        f"held-out rollouts: recall mean {summary.recall_mean:.3f} (min {summary.recall_min:.3f}), IoU mean "
        f"{summary.iou_mean:.3f}; the teacher (ground truth): recall {teacher.recall_mean:.3f}, IoU "
        f"{teacher.iou_mean:.3f}; {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()

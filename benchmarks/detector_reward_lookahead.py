"""How far ahead must an agent look for Algorithm 1's reward to keep the tumour in its box? A planning probe.

An agent that knows the ground-truth box exactly plans with the detector's own actions and reward (Algorithm 1,
``gamma``): at each step it takes the action with the best discounted return over the next ``depth`` steps (exact
search over all action sequences, nothing learned; ties: the smallest action index, as the greedy agent), until its
terminal action or the step limit. Depth 1 is an agent that sees only the immediate reward, the full depth (15) the
optimal Q-function Q* that deep Q-learning approximates.

Why it matters: Algorithm 1 pays +1 for any zoom that raises the IoU, also one that cuts away part of the tumour;
only the terminal action, steps later and discounted by ``gamma`` per step, tells the two apart. The recall of the
planner's final boxes by depth says how accurately a learned Q-function must represent those later consequences
(value gaps of ``gamma^k * terminal_reward``) to reach a given recall, whatever its features.

Usage:
  .venv/bin/python benchmarks/detector_reward_lookahead.py --cache OUT/cache --splits OUT/tables/splits.json \\
      --fold 0 --depths 1 2 3 4 [--config configs/detector-synthetic.yaml]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from npcseg.config import load_config_over
from npcseg.detection.boxes import NUM_ACTIONS, TERMINAL_ACTION, Box, apply_action
from npcseg.detection.config import DetectorConfig
from npcseg.detection.environment import detection_slices
from npcseg.detection.references import follow_policy
from npcseg.detection.reward import reward
from npcseg.detection.scores import DetectionSummary, score_boxes


class Planner:
    """Exact depth-limited search of the discounted Algorithm 1 return for one target (memoised per box)."""

    def __init__(self, target: Box, shape: tuple[int, int], config: DetectorConfig) -> None:
        self.target, self.shape, self.config = target, shape, config
        self.memo: dict[tuple[Box, int], float] = {}

    def moved(self, box: Box, action: int) -> Box:
        if action == TERMINAL_ACTION:
            return box
        return apply_action(box, action, self.shape, zoom=self.config.zoom, shift=self.config.shift)

    def action_values(self, box: Box, depth: int) -> list[float]:
        """Return of each action followed by the best ``depth - 1`` further steps (the terminal action ends)."""
        values = []
        for action in range(NUM_ACTIONS):
            after = self.moved(box, action)
            gained = reward(box, after, action, self.target, self.config.reward)
            if action != TERMINAL_ACTION:
                gained += self.config.gamma * self.best(after, depth - 1)
            values.append(gained)
        return values

    def best(self, box: Box, depth: int) -> float:
        if depth <= 0:
            return 0.0
        key = (box, depth)
        if key not in self.memo:
            self.memo[key] = max(self.action_values(box, depth))
        return self.memo[key]


def plan_episode(target: Box, shape: tuple[int, int], config: DetectorConfig, depth: int) -> tuple[Box, bool]:
    """The planner's final box on a slice of ``shape`` and whether it took the terminal action."""
    planner = Planner(target, shape, config)

    def choose(box: Box, step: int) -> int:
        values = planner.action_values(box, min(depth, config.max_steps - step))
        return max(range(NUM_ACTIONS), key=values.__getitem__)  # the first maximum: smallest index on ties

    box, _, stopped = follow_policy(shape, config, choose)
    return box, stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True, help="splits.json; the slices = one fold's held-out")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--config", type=Path, help="YAML of DetectorConfig fields (thresholds, gamma, moves)")
    args = parser.parse_args()
    config = DetectorConfig() if args.config is None else load_config_over(DetectorConfig(), args.config)
    held_out = json.loads(args.splits.read_text())[args.fold]["val"]
    slices = detection_slices(args.cache, held_out, config.sequences)
    targets = [item.target for item in slices if item.target is not None]  # tumour slices only: all of them
    print(f"{len(targets)} tumour slices of fold {args.fold}'s held-out cases; gamma {config.gamma}; {config.reward}")
    print("| look-ahead (steps) | recall min | recall mean | IoU mean | recall >= 0.95 | terminal action taken | s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for depth in args.depths:
        started = time.perf_counter()
        finals = [plan_episode(target, item.shape, config, depth) for item, target in zip(slices, targets, strict=True)]
        summary: DetectionSummary = score_boxes([box for box, _ in finals], targets)
        stopped = sum(terminal for _, terminal in finals) / len(finals)
        print(
            f"| {depth} | {summary.recall_min:.1%} | {summary.recall_mean:.1%} | {summary.iou_mean:.1%} | "
            f"{summary.fraction_recall_095:.1%} | {stopped:.1%} | {time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Frames per second of `rl` and of `mutual --advice subgoal` side by side, on the same machine
and the same number of torch threads, teacher reads and updates included.

Prints each run's frames per second over the whole run and over its second half (by then the
teacher has read most prompts once: what a long run pays per frame), where the time went, the teacher reads
and distinct prompts per 1,024 frames, and the ratio mutual / rl (the goal: >= 0.5).

    python benchmarks/subgoal_speed.py [--env BabyAI-GoToLocal-v0] [--teacher smollm2] [--frames 51200]
                                       [--budget N] [--update-every K] [--threads 1] [--precision auto]

Without --budget, --update-every and --precision, the defaults of `TrainConfig`: what a user who only adds
`--advice subgoal` gets.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from mutualrl import output
from mutualrl.config import TrainConfig
from mutualrl.loop import Trainer
from mutualrl.tracking import TIMERS


def measure(config: TrainConfig, out: Path) -> dict[str, float]:
    trainer = Trainer(config, out, quiet=True)
    trainer.train()
    rows = trainer.run.read_metrics()
    seconds = np.diff([0.0] + [r["wall_time"] for r in rows])
    half = len(rows) // 2
    figures = {"fps": rows[-1]["frames"] / seconds.sum(), "wall": float(seconds.sum()),
               "fps_second_half": (rows[-1]["frames"] - rows[half - 1]["frames"]) / seconds[half:].sum()}
    figures.update({k: sum(r.get(k, 0.0) for r in rows) for k in TIMERS})
    for key in ("reads_per_1024_frames", "prompts_per_1024_frames", "advised_fraction"):
        if key in rows[-1]:
            figures[key] = float(np.mean([r[key] for r in rows]))
    return figures


def main() -> None:
    output.configure()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="BabyAI-GoToLocal-v0")
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--frames", type=int, default=51_200)
    parser.add_argument("--budget", type=int, default=None, help="teacher_budget: reads per iteration (default: the config's)")
    parser.add_argument("--update-every", type=int, default=None,
                        help="teacher_update_every: iterations per teacher update (default: the config's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for both runs")
    parser.add_argument("--precision", default=None, help="teacher_precision (default: the config's, auto)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = TrainConfig(env_id=args.env, frames=args.frames).replace(eval_every=0)
    tuned = {k: v for k, v in (("teacher_budget", args.budget), ("teacher_update_every", args.update_every),
                               ("teacher_precision", args.precision)) if v is not None}
    runs = {"rl": base.replace(mode="rl"),
            "mutual subgoal": base.replace(mode="mutual", advice="subgoal", teacher=args.teacher, **tuned)}
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in runs.items():
            measured[name] = figures = measure(config, Path(tmp) / name.replace(" ", "-"))
            split = ", ".join(f"{k[5:]} {figures[k]:.1f}" for k in TIMERS if figures[k] > 0.05)
            extra = "".join(f", {k} {figures[k]:.1f}" for k in ("reads_per_1024_frames", "prompts_per_1024_frames",
                                                               "advised_fraction") if k in figures)
            print(f"{name:>15}: {figures['fps']:,.0f} frames/s over {args.frames:,} frames, {figures['fps_second_half']:,.0f} "
                  f"over the second half ({figures['wall']:.1f} s: {split}){extra}", flush=True)
    for part, key in (("the whole run", "fps"), ("the second half (the teacher's first reads of each prompt done)",
                                                  "fps_second_half")):
        ratio = measured["mutual subgoal"][key] / measured["rl"][key]
        print(f"mutual --advice subgoal keeps {ratio:.2f} of rl's frames per second over {part} (goal: >= 0.50) "
              f"on {args.env}, {args.threads} thread(s)")


if __name__ == "__main__":
    main()

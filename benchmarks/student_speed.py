"""Frames per second of each student learning alone, and where its time goes: stepping the
environments, the student acting, and its PPO update. One run after another in this process, so
that every student meets the same machine.

    python benchmarks/student_speed.py [--students mlp,film,film:64] [--env BabyAI-GoToLocal-v0] \
        [--frames 40960] [--threads 2] [--kernels]

`--kernels` also times one iteration's PPO update of each student (after one to warm up), and
profiles another (`torch.autograd.profiler`) for the time, per frame, of its convolutions and of its memory
(forward and backward): the kernels whose cost the network's size sets, not Python's overhead.

A student is an architecture, or ARCHITECTURE:MEMORY for one with an LSTM memory of that size
(as in students.py, whose parsing, and subgoal_speed.py's measurement, this script shares).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mutualrl import output
from mutualrl.config import TrainConfig
from mutualrl.loop import Trainer
from mutualrl.ppo import ppo_update
from mutualrl.tracking import Timer

import subgoal_speed
from students import student_settings

#: the kernels whose cost the network's size sets, by the profiler's op names
KERNELS = {"convolutions": ("convolution",), "memory": ("rnn",)}


def measure(student: str, env_id: str, frames: int, out: str) -> dict[str, float]:
    config = TrainConfig(env_id=env_id, mode="rl", frames=frames, **student_settings(student)).replace(
        eval_every=0, checkpoint_every=10_000)
    figures = subgoal_speed.measure(config, Path(out))
    return {"fps": figures["fps"], **{part: figures[f"time_{part}"] / figures["wall"]
                                      for part in ("env", "student", "student_update")}}


def kernel_times(student: str, env_id: str, out: str) -> dict[str, float]:
    """Microseconds per frame of one PPO update: in all, and in each group of `KERNELS` (self time)."""
    config = TrainConfig(env_id=env_id, mode="rl", **student_settings(student)).replace(eval_every=0)
    trainer = Trainer(config, Path(out), quiet=True)
    batch, _, _ = trainer.prepare_update(trainer.collect_rollout(Timer()))
    ppo_update(trainer.student, trainer.optimizer, batch, config.ppo)  # (warm-up)
    start = time.perf_counter()
    ppo_update(trainer.student, trainer.optimizer, batch, config.ppo)
    wall = time.perf_counter() - start
    with torch.autograd.profiler.profile(use_kineto=False) as profile:
        ppo_update(trainer.student, trainer.optimizer, batch, config.ppo)
    per_frame = 1e6 / config.frames_per_iteration
    times = {"update": wall * per_frame}
    for group, names in KERNELS.items():
        times[group] = sum(e.self_cpu_time_total for e in profile.key_averages()
                           if any(n in e.key for n in names)) * 1e-6 * per_frame
    return times


def main() -> None:
    output.configure()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default="mlp,film,film:64")
    parser.add_argument("--env", default="BabyAI-GoToLocal-v0")
    parser.add_argument("--frames", type=int, default=40_960)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--kernels", action="store_true", help="also profile one PPO update of each student")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, student in enumerate(args.students.split(",")):
            results[student] = measure(student, args.env, args.frames, f"{tmp}/{i}")
    base = next(iter(results.values()))["fps"]
    print(f"{args.env}, {args.frames:,} frames each, {args.threads} torch threads")
    print(f"{'student':<12} {'frames/s':>9} {'x first':>8} {'env':>6} {'acting':>7} {'update':>7}  (share of wall time)")
    for student, r in results.items():
        print(f"{student:<12} {r['fps']:>9,.0f} {r['fps'] / base:>8.2f} {r['env']:>6.0%} {r['student']:>7.0%} "
              f"{r['student_update']:>7.0%}")
    if args.kernels:
        allowed = 1e6 / base / 9  # another student's extra time per frame at 0.9 of the first's speed
        print(f"microseconds per frame: at 0.9 of the first student's speed, another takes at most {allowed:,.0f} "
              "more in all; one PPO update (timed), and its kernels (profiled):")
        with tempfile.TemporaryDirectory() as tmp:
            for i, student in enumerate(args.students.split(",")):
                times = kernel_times(student, args.env, f"{tmp}/{i}")
                print(f"{student:<12} " + ", ".join(f"{part} {value:,.0f}" for part, value in times.items()))


if __name__ == "__main__":
    main()

"""Our PPO vs Stable-Baselines3 PPO on the same task and seeds, the student learning alone.

Prints, per implementation and seed: frames until the rolling-100-episode success rate first
reaches 0.9 and 0.99, the final rolling success, and frames/s; then the ratios ours/SB3.

    python benchmarks/rl_alone.py [--env ENV] [--seeds 3] [--frames 500000]

SB3 runs as a user would set it up: 16 envs, MLP policy on the 7x7x3 image (ImgObsWrapper),
the full 7-action space. Ours runs twice: with its defaults (`ours`: the task's 3 navigation
actions) and on the same full 7-action space as SB3 (`ours-7`), so both comparisons are printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from mutualrl import output


def run_sb3(env_id: str, seed: int, frames: int) -> dict:
    import gymnasium as gym
    from minigrid.wrappers import ImgObsWrapper
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    reached: dict[float, int] = {}

    class Milestones(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buf = self.model.ep_info_buffer
            if len(buf) >= 100:
                rate = float(np.mean([e["r"] > 0 for e in buf]))
                for t in (0.9, 0.99):
                    if rate >= t and t not in reached:
                        reached[t] = self.num_timesteps
                self.final = rate

    envs = make_vec_env(lambda: ImgObsWrapper(gym.make(env_id)), n_envs=16, seed=seed)
    model = PPO("MlpPolicy", envs, n_steps=128, batch_size=256, n_epochs=4, learning_rate=2.5e-4,
                ent_coef=0.01, seed=seed, verbose=0, device="cpu")
    callback = Milestones()
    start = time.perf_counter()
    model.learn(total_timesteps=frames, callback=callback)
    elapsed = time.perf_counter() - start
    return {"to_0.9": reached.get(0.9), "to_0.99": reached.get(0.99), "final": getattr(callback, "final", 0.0),
            "fps": model.num_timesteps / elapsed}


def run_ours(env_id: str, seed: int, frames: int, action_space: str = "task") -> dict:
    from mutualrl.config import TrainConfig
    from mutualrl.loop import Trainer
    from mutualrl.tracking import frames_to_success

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(env_id=env_id, mode="rl", frames=frames, seed=seed, action_space=action_space)
        trainer = Trainer(config, out, quiet=True)
        trainer.train()
        rows = trainer.run.read_metrics()
    # frames/s over the training iterations (rollouts + updates), as SB3's learn() is timed
    return {"to_0.9": frames_to_success(rows, 0.9), "to_0.99": frames_to_success(rows, 0.99),
            "final": rows[-1]["success_rate"], "fps": trainer.frames / trainer.wall_time}


def main() -> None:
    output.configure()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="BabyAI-GoToRedBallNoDists-v0")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=500_000, help="frame budget of each SB3 run")
    parser.add_argument("--our-frames", type=int, default=100_000, help="frame budget of each of our runs")
    parser.add_argument("--impls", default="ours,ours-7,sb3",
                        help="which to run: ours (task actions), ours-7 (all 7 actions, as SB3), sb3")
    args = parser.parse_args()
    torch.set_num_threads(2)
    chosen = [i.strip() for i in args.impls.split(",")]
    full = lambda env_id, seed, frames: run_ours(env_id, seed, frames, "full")  # noqa: E731
    runners = [r for r in (("ours", run_ours, args.our_frames), ("ours-7", full, args.our_frames),
                           ("sb3", run_sb3, args.frames)) if r[0] in chosen]
    results: dict[str, list[dict]] = {name: [] for name, _, _ in runners}
    for seed in range(args.seeds):
        for name, runner, frames in runners:
            r = runner(args.env, seed, frames)
            results[name].append(r)
            print(f"{name:5s} seed {seed}: frames to 0.9 {r['to_0.9']}, to 0.99 {r['to_0.99']}, "
                  f"final {r['final']:.3f}, {r['fps']:.0f} frames/s", flush=True)

    def mean(name: str, key: str) -> float:
        values = [r[key] for r in results[name]]
        return float(np.mean(values)) if all(v is not None for v in values) else float("nan")

    print(f"\n{args.env}, {args.seeds} seeds (mean; nan = a seed never reached it)")
    print(f"{'':8s}{'to 0.9':>12s}{'to 0.99':>12s}{'final':>8s}{'frames/s':>10s}")
    for name in results:
        print(f"{name:8s}{mean(name, 'to_0.9'):12.0f}{mean(name, 'to_0.99'):12.0f}{mean(name, 'final'):8.3f}{mean(name, 'fps'):10.0f}")
    for ours in ("ours", "ours-7"):
        if ours in results and "sb3" in results:
            print(f"ratio {ours}/sb3: frames to 0.9 {mean(ours, 'to_0.9') / mean('sb3', 'to_0.9'):.3f}, "
                  f"frames to 0.99 {mean(ours, 'to_0.99') / mean('sb3', 'to_0.99'):.3f}, "
                  f"frames/s {mean(ours, 'fps') / mean('sb3', 'fps'):.2f}")


if __name__ == "__main__":
    main()

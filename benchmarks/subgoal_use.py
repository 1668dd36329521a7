"""Where a subgoal-advised student alone loses: its own grounding against the right subgoal shown,
greedy against sampled actions, on held-out episodes of its run's level.

The right subgoal is the BabyAI bot's (the reference, never the teacher's helper): at every step,
the first subgoal its plan means in the student's view. Alone equal to shown: the student's
grounding is not what holds it back. Greedy far below sampled: its policy is not yet sure.
"Own = bot's": along the shown greedy episodes, the share of the states where the bot's subgoal
marks an object in view whose own subgoal marks exactly the same cells.

    python benchmarks/subgoal_use.py RUN_DIR [RUN_DIR ...] [--episodes 100] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from mutualrl import output
from mutualrl.envs import FULL_ACTIONS, obs_to_tensors
from mutualrl.evaluation import run_episodes
from mutualrl.student import Student
from mutualrl.students import load_student
from mutualrl.subgoals import Sightings, subgoal_vector
from mutualrl.teachers.bot import BotTeacher


def success(model: Student, env_id: str, episodes: int, seed: int, shown: bool, greedy: bool) -> tuple[float, float]:
    """Held-out success of the student alone (its own subgoals) or shown the bot's; and shown, how
    often its own object is the bot's where the bot's subgoal marks one (NaN alone)."""
    bot, memory, agree, marked, sightings = BotTeacher(), None, 0, 0, {}

    def policy(obs, sits, envs, starts):
        nonlocal memory, agree, marked
        tensors, begins = obs_to_tensors(obs), torch.as_tensor(starts, dtype=torch.float32)
        with torch.no_grad():
            if shown:
                bot.observe(envs, [s.last_action for s in sits])
                images, advice = np.asarray(obs["image"]), []
                for env, image, start in zip(envs, images, starts):
                    seen = sightings.setdefault(id(env), Sightings())
                    if start:
                        seen.clear()
                    seen.see(image, env.agent_pos, env.agent_dir)
                    subgoal = bot.subgoal(env, image)
                    advice.append(subgoal_vector(image, subgoal, seen.toward(subgoal.obj, env.agent_pos, env.agent_dir)))
                advice = torch.as_tensor(np.stack(advice))
                read = model.read(tensors)
                own = model.own_subgoal(*read)[:, :49]
                rows = advice[:, :49].any(-1)
                marked += int(rows.sum())
                agree += int((own[rows] == advice[rows, :49]).all(-1).sum())
                logits, _, memory = model(tensors, advice.float(), torch.ones(len(envs)), memory, begins, read)
            else:
                logits, _, memory = model.alone(tensors, memory, begins)
        return (logits.argmax(-1) if greedy else torch.distributions.Categorical(logits=logits).sample()).numpy()

    rate = run_episodes(env_id, episodes, seed, policy, actions=FULL_ACTIONS[: model.num_actions]).success_rate
    return rate, agree / marked if marked else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories of students trained with subgoal advice")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    output.configure()
    torch.manual_seed(args.seed)
    table = Table(title=f"the student's success on {args.episodes} held-out episodes (seed {args.seed})")
    for column in ("run", "level", "alone, greedy", "shown, greedy", "alone, sampled", "shown, sampled", "own = bot's"):
        table.add_column(column)
    for run in args.runs:
        config, model = load_student(run)
        if config.guidance.advice != "subgoal":
            raise SystemExit(f"{run}: trained with {config.guidance.advice!r} advice; this measure needs 'subgoal'")
        model.eval()
        results = [success(model, config.env_id, args.episodes, args.seed, shown, greedy)
                   for greedy in (True, False) for shown in (False, True)]
        table.add_row(run, config.env_id, *(f"{rate:.2f}" for rate, _ in results), f"{results[1][1]:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()

"""Zero-shot next step: does the untaught teacher's verb follow the facts of the state?

Along the BabyAI bot's own held-out episodes of door levels, at every state where the bot's step
changes (its subgoal verb other than explore), the teacher is asked a verb cloze in several forms:
the mission alone (today's question) and the mission with the facts that decide the step
(`facts.state_facts`: what the agent carries, the doors in view and their states, the objects in
view). A form is right where its likeliest verb word is the bot's. "majority" is the share of
the commonest verb: a form that ignores the facts and names one verb scores at most that.

    python benchmarks/next_step_zero_shot.py [--teacher smollm2] [--episodes 5] [--seed 0] [--levels ID,ID]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from mutualrl import output
from mutualrl.envs import FULL_ACTIONS, Situation
from mutualrl.evaluation import run_episodes
from mutualrl.facts import state_facts
from mutualrl.grounding import QUESTION, VERB_LEAD
from mutualrl.teachers import BotTeacher, make_teacher

LEVELS = ("BabyAI-UnlockLocal-v0", "BabyAI-UnlockPickup-v0", "BabyAI-BlockedUnlockPickup-v0", "BabyAI-KeyCorridorS3R1-v0")
#: the bot's subgoal verbs as one-word answers
WORDS = {"go to": "go", "pick up": "pick", "open": "open", "drop": "drop", "put next to": "put"}
#: name -> (question, with the facts before it or not; the lead that begins the reply)
FORMS = {
    "mission alone": (QUESTION, False, VERB_LEAD),
    "facts + next": ("What should the agent do next?", True, "The next step is to"),
    "facts + first": ("What must the agent do first?", True, "First, the agent must"),
    "facts + I": ("What do you do now?", True, "Now I"),
    "facts + to do this": ("To do this, what is the next step?", True, "The next step is to"),
}


def bot_steps(env_id: str, episodes: int, seed: int) -> list[tuple[str, str, str]]:
    """(mission, facts, the bot's verb word) at each state where the bot's step changes."""
    bot, steps, last = BotTeacher(), [], {}

    def follow(obs, sits, envs, starts):
        actions = bot.observe(envs, [s.last_action for s in sits])
        for i, (env, image, start) in enumerate(zip(envs, np.asarray(obs["image"]), starts)):
            subgoal = bot.subgoal(env, image)
            if subgoal.verb in WORDS and (start or last.get(i) != subgoal):
                steps.append((env.mission, state_facts(image), WORDS[subgoal.verb]))
            last[i] = subgoal
        return np.array([FULL_ACTIONS.index(a) for a in actions])

    run_episodes(env_id, episodes, seed, follow, actions=FULL_ACTIONS)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="smollm2")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", default=",".join(LEVELS))
    args = parser.parse_args()
    output.configure()
    teacher = make_teacher(args.teacher, seed=args.seed)
    words = tuple(dict.fromkeys(WORDS.values()))
    table = Table(title=f"the untaught {args.teacher}'s verb against the bot's step ({args.episodes} held-out "
                        f"episodes a level, seed {args.seed})")
    for column in ("level", "steps", "majority", *FORMS, "said most (last)", "seconds"):
        table.add_column(column)
    for env_id in args.levels.split(","):
        start = time.perf_counter()
        steps = bot_steps(env_id, args.episodes, args.seed)
        wanted = Counter(w for _, _, w in steps)
        row = [env_id.removeprefix("BabyAI-").removesuffix("-v0"), str(len(steps)),
               f"{max(wanted.values()) / len(steps):.2f} ({wanted.most_common(1)[0][0]})"]
        for question, with_facts, lead in FORMS.values():
            asked = [Situation(m, lead, words, question=f"{f} {question}" if with_facts else question, cloze=True)
                     for m, f, _ in steps]
            said = [words[int(np.argmax(a.probs))] for a in teacher.advise(asked)]
            row.append(f"{np.mean([s == w for s, (_, _, w) in zip(said, steps)]):.2f}")
        row += [", ".join(f"{w} {n}" for w, n in Counter(said).most_common(2)), f"{time.perf_counter() - start:.0f}"]
        table.add_row(*row)
    Console(width=180).print(table)


if __name__ == "__main__":
    main()

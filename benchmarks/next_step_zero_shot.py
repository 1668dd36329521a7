"""Zero-shot next step: do the untaught teacher's verb and object follow the facts of the state?

Along the BabyAI bot's own held-out episodes of door levels, at every state where the bot's step
changes (its subgoal verb other than explore), the teacher is asked in several forms: the mission
alone (today's question) and the mission with the facts that decide the step
(`facts.state_facts`: what the agent carries, the doors in view and their states, the objects in
view). The verb: right where the likeliest verb word is the bot's. The object (where the bot's
step has one), asked as the grounding clozes ask it: the colour after the lead, then the kind after
the lead and that colour; right where both likeliest answers are the bot's object's (a kind said to the colour cloze reads the
mission as naming no colour, as `grounding` reads it: any colour then). "majority"
is the share of the commonest answer: a form that ignores the facts scores at most that.

    python benchmarks/next_step_zero_shot.py [--teacher smollm2] [--episodes 5] [--seed 0] [--levels ID,ID]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from mutualrl import output
from mutualrl.envs import FULL_ACTIONS, Situation
from mutualrl.evaluation import run_episodes
from mutualrl.facts import state_facts
from mutualrl.grounding import COLOURS, KINDS, QUESTION, VERB_LEAD, words_of
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
#: the same for the object: name -> (question, with the facts or not; the lead before the colour)
OBJECT_FORMS = {
    "mission alone": (QUESTION, False, "The mission is to go to the"),
    "facts + go to": ("What should the agent do next?", True, "The next step is to go to the"),
    "facts + key rule": ("A locked door opens only with its key.", True, "So the agent must now get the"),
    "facts + first get": ("What must the agent get first?", True, "First, the agent must get the"),
}


def bot_steps(env_id: str, episodes: int, seed: int) -> list[tuple[str, str, str, tuple[str, str] | None]]:
    """(mission, facts, the bot's verb word, its object's colour and kind) at each state where the
    bot's step changes."""
    bot, steps, last = BotTeacher(), [], {}

    def follow(obs, sits, envs, starts):
        actions = bot.observe(envs, [s.last_action for s in sits])
        for i, (env, image, start) in enumerate(zip(envs, np.asarray(obs["image"]), starts)):
            subgoal = bot.subgoal(env, image)
            if subgoal.verb in WORDS and (start or last.get(i) != subgoal):
                obj = words_of(subgoal.obj) if subgoal.obj is not None else None
                steps.append((env.mission, state_facts(image), WORDS[subgoal.verb], obj))
            last[i] = subgoal
        return np.array([FULL_ACTIONS.index(a) for a in actions])

    run_episodes(env_id, episodes, seed, follow, actions=FULL_ACTIONS)
    return steps


def verbs_said(teacher, steps, words: tuple[str, ...]) -> list[list[str]]:
    """Each verb form's likeliest word at each step."""
    said = []
    for question, with_facts, lead in FORMS.values():
        asked = [Situation(m, lead, words, question=f"{f} {question}" if with_facts else question, cloze=True)
                 for m, f, _, _ in steps]
        said.append([words[int(np.argmax(a.probs))] for a in teacher.advise(asked)])
    return said


def objects_said(teacher, steps) -> list[list[tuple[str, str]]]:
    """Each object form's likeliest colour and, given the bot's object's colour, likeliest kind."""
    said = []
    for question, with_facts, lead in OBJECT_FORMS.values():
        asked = [f"{f} {question}" if with_facts else question for _, f, _, _ in steps]
        colours = teacher.advise([Situation(m, lead, COLOURS + KINDS, question=q, cloze=True)
                                  for (m, _, _, _), q in zip(steps, asked)])
        kinds = teacher.advise([Situation(m, f"{lead} {obj[0]}", KINDS, question=q, cloze=True)
                                for (m, _, _, obj), q in zip(steps, asked)])
        said.append([((COLOURS + KINDS)[int(np.argmax(c.probs))], KINDS[int(np.argmax(k.probs))])
                     for c, k in zip(colours, kinds)])
    return said


def right(said: tuple[str, str], obj: tuple[str, str]) -> bool:
    """Whether the object said is the bot's: its kind, and its colour or no colour named."""
    return said[1] == obj[1] and (said[0] == obj[0] or said[0] in KINDS)


def majority(answers: list) -> str:
    top, count = Counter(answers).most_common(1)[0]
    return f"{count / len(answers):.2f} ({' '.join(top) if isinstance(top, tuple) else top})"


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
    title = f"({args.episodes} held-out episodes a level, seed {args.seed})"
    verbs = Table(title=f"the untaught {args.teacher}'s verb against the bot's step {title}")
    objects = Table(title=f"the untaught {args.teacher}'s object against the bot's step's {title}")
    for table, forms in ((verbs, FORMS), (objects, OBJECT_FORMS)):
        for column in ("level", "steps", "majority", *forms, "said most (last)"):
            table.add_column(column)
    for env_id in args.levels.split(","):
        level = env_id.removeprefix("BabyAI-").removesuffix("-v0")
        steps = bot_steps(env_id, args.episodes, args.seed)
        said = verbs_said(teacher, steps, words)
        verbs.add_row(level, str(len(steps)), majority([w for _, _, w, _ in steps]),
                      *[f"{np.mean([s == w for s, (_, _, w, _) in zip(form, steps)]):.2f}" for form in said],
                      ", ".join(f"{w} {n}" for w, n in Counter(said[-1]).most_common(2)))
        steps = [step for step in steps if step[3] is not None]
        said = objects_said(teacher, steps)
        objects.add_row(level, str(len(steps)), majority([obj for _, _, _, obj in steps]),
                        *[f"{np.mean([right(s, obj) for s, (_, _, _, obj) in zip(form, steps)]):.2f}" for form in said],
                        ", ".join(f"{' '.join(o)} {n}" for o, n in Counter(said[-1]).most_common(2)))
    console = Console(width=180)
    console.print(verbs)
    console.print(objects)


if __name__ == "__main__":
    main()

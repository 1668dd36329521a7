"""Verdicts: what the student's experience may judge of a teacher's answers.

A decision is judged on its object's clozes, never on its verb's (`judged`); the student's own
acts are judged in hindsight as the teacher reads the mission (`hindsight`); and a colour cloze
keeps the untaught model's reading of whether the mission names a colour (`kept_reading`). Each
guards against a drift measured in the loop (the docstrings say which).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mutualrl.envs import Situation
from mutualrl.choice import Option, answers_for, subgoal_for
from mutualrl.grounding import COLOURS, NEXT, asks_colour, meaning, mission_questions, verb_words
from mutualrl.rollout import HELD
from mutualrl.subgoals import Obj, Subgoal


def kept_reading(cloze: Situation, target: np.ndarray, reading: np.ndarray) -> np.ndarray:
    """A learning target with a reading of whether the mission names a colour kept (the untaught
    model's, `teachers.hf`): in a colour cloze the colours' share and the kinds' share stay
    `reading`'s, and the feedback moves answers within each. An act is as consistent with "the
    red ball" as with "a ball", so whether the mission names a colour is the language model's, as
    the verb is.
    Measured (`GoToRedBall`, `mutual`, seed 2): without it, the untaken kind answers gained on
    noisy colours' feedback until "go to the red ball" read "ball" (0.11 untaught, 1.00 after
    143k frames) and any ball was chosen (subgoal accuracy 1.00 -> 0.83)."""
    if not asks_colour(cloze):
        return target
    kept = np.array(target, dtype=float)
    for part in (slice(0, len(COLOURS)), slice(len(COLOURS), None)):
        total = kept[part].sum()
        kept[part] = kept[part] * reading[part].sum() / total if total > 0 else reading[part]
    return kept


def judged(questions: Sequence[Situation], answers: Sequence[int], steps: bool = True) -> list[int]:
    """The answers a teacher's decision is judged on: its object's, never its verb's (-1), and the
    next step's (`steps`) only while the student succeeds often (`SubgoalGuidance`); until then
    every one of the step's clozes is held where it stands (`rollout.HELD`), not only those the
    choice answers. Measured on `UnlockPickup` (`mutual`, seed 0): with those alone held, a student
    that never succeeded let the step with a key in hand beside its locked door come to name the
    mission's box out of view (a drop; subgoal accuracy 0.83 -> 0.62 in 307,200 frames, the
    student alone 0.00); all held, 0.83 -> 0.81, the student alone 0.60. Measured on `UnlockLocal`
    (`mutual`): a student that succeeded in 0.02 of its episodes, judging the step by the advantages of its
    decisions, pulled the key beside its locked door to the door (seed 0, subgoal accuracy 0.77 ->
    0.73); not judged and not held, the step's clozes followed the mission's feedback through the
    shared adapter, and a key in view alone was no longer named (seed 2, 0.76 -> 0.57). The
    steps under a subgoal judge its verb by how such subgoals end ("go to" on facing the object,
    "pick up" on holding it), not by what the mission means. Measured on `PickupLoc`, seed 2: the
    verb went from "pick" to "go" (a baseline shared by all prompts) or to "open" (each prompt's
    own); on the short curriculum, "go", learnt on go-to missions, was said to pick-up missions
    after them. Only a success judges the verb, by the act that completed it (`completion`)."""
    return [-1 if meaning(q)[0] == "verb" else HELD if not steps and meaning(q)[0] == NEXT else a
            for q, a in zip(questions, answers)]


def one_right(cloze: Situation, answer: int) -> list[tuple[int, float]]:
    """Each answer of a cloze with its verdict where one answer is known right: 1 for it, 0 for
    every other. `teachers.hf.improvement_targets` weighs an answer against the others of its own
    prompt, so a verdict on the right answer alone moves nothing where the teacher's decisions
    there gave it no other (an explore is judged on nothing). Measured on `UnlockLocal` (`mutual`,
    seed 2): with the verdict 1 alone, the step with the key in hand beside its locked door came to
    read "key" (0.99) from the states before the pick-up through the shared adapter, its own
    verdicts on the door moved nothing, and the teacher sent its student exploring there (subgoal
    accuracy 0.905 at 215,040 frames, 0.613 at 307,200)."""
    return [(offered, float(offered == answer)) for offered in range(len(cloze.actions))]


def hindsight(mission: str, actions: tuple[str, ...], obj: Obj, verb: str, carrying: Obj | None,
              verb_reading: np.ndarray | None = None) -> tuple[list[Situation], list[int]]:
    """The clozes and answers a student's own act amounts to: going to `obj` or picking it up
    (`verb`) with `carrying` in hand, as the verb word the teacher reads the mission as (the
    likeliest of its answers to the verb cloze, `verb_reading`; without it, each verb word the
    actions allow) would read it.

    Only the object's clozes (as `judged`): an act shows which object the student dealt with, not
    which verb the mission means (going to an object is a step of every verb). Measured on the short
    curriculum (`mutual`, seed 0): judging the verb "go" at every object faced, the teacher fell
    from 0.98 to 0.44 subgoal accuracy on `GoToRedBall` and was right in 0.11 of `PickupLoc`'s
    states after the go-to levels; judging the object only, 1.00 and 0.62 (untaught: 0.89).
    And only the roles of the verb read: measured on `PutNextLocal` (`mutual`, seed 2), an act
    judged as every verb would read it gave the go-to role of a put mission the colour of each
    object the student faced, and the adapter carried that to the roles that matter (the object
    to move: "purple" 0.73 -> "red" 0.38; the teacher 0.97 -> 0.77 after 50k frames)."""
    questions = [q for q in mission_questions(mission, actions) if meaning(q)[0] != "verb"]
    words = verb_words(actions)
    if verb_reading is not None and len(words) > 1:
        words = (words[int(np.argmax(verb_reading))],)
    picked, answers = [], []
    for word in words:
        made, role = subgoal_for(word, obj, carrying)
        if made != verb:
            continue
        for q, a in zip(questions, answers_for(questions, Option(Subgoal(verb, obj), word, role))):
            if a >= 0 and q not in picked:
                picked.append(q)
                answers.append(a)
    return picked, answers

"""The verb a mission means, judged by the act that completed it.

Which verb a mission asks for is read by the language model from the mission's words (the verb
cloze, `grounding`); a verb it does not map ("fetch the ball", "move the box close to the key") is
read wrong and stays so, since no decision judges the verb (`verdicts.judged`: judged per
decision, the verbs drifted). The environment says it in another way: a mission ends in success on
the act its verb names (facing the object for "go", picking it up for "pick", dropping it for
"put", opening a door for "open"). So each success is a verdict on the verb cloze: 1 for the verb
of the act that completed the mission, 0 for every other verb the cloze offers. Within the cloze's
records (`teachers.hf.improvement_targets` compares each answer with the others of its own prompt)
that verb gains and the others lose, each success alike.

Only successes judge: acts that did not complete the mission say nothing about the verbs never
tried, and measured, judging them 0 made an untried verb absorb what the tried ones lost ("open"
1.00 on `PutNextLocal`, whose student rarely succeeded, from 0.42 zero-shot). And only frequent
ones (`RecentSuccess`, `verb_success_floor`): on `PutNextLocal` in other words, a student
succeeding in 0.01-0.09 of its episodes gave a few verdicts an update, and over 500k frames the
verb of the missions as given drifted from "put" to "pick" (0.938 -> 0.521), where without them
it held. A student that rarely succeeds judges nothing; where the cloze offers one verb (the go-to
levels) there is no cloze.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

import numpy as np

from mutualrl.envs import Situation
from mutualrl.grounding import VERB_WORDS, meaning, mission_questions
from mutualrl.subgoals import carried, faces_open_door, front_object
from mutualrl.verdicts import one_right


#: the training episodes whose outcomes say whether the student's successes are frequent
RECENT_EPISODES = 100


class RecentSuccess:
    """The share of the student's last `RECENT_EPISODES` training episodes that succeeded, those
    not yet played counted as failures (a lucky first episode is one success in a hundred)."""

    def __init__(self) -> None:
        self._outcomes: deque[bool] = deque(maxlen=RECENT_EPISODES)

    def add(self, outcomes: Iterable[bool]) -> None:
        self._outcomes.extend(bool(o) for o in outcomes)

    @property
    def rate(self) -> float:
        return sum(self._outcomes) / RECENT_EPISODES


def act_verb(before: np.ndarray, after: np.ndarray) -> str | None:
    """The subgoal verb of what a step did to an object, from the views before and after it: "pick
    up" (now carrying), "put next to" (hands emptied), "open" (the door faced is now open), "go to"
    (now facing an object it did not face), or None."""
    holding, held = carried(after), carried(before)
    if holding is not None and held is None:
        return "pick up"
    if held is not None and holding is None:
        return "put next to"
    front, faced = front_object(after), front_object(before)
    if front is not None and front == faced and faces_open_door(after) and not faces_open_door(before):
        return "open"
    if front is not None and front != faced:
        return "go to"
    return None


def verb_cloze(mission: str, actions: tuple[str, ...]) -> Situation | None:
    """The mission's verb cloze, where the actions allow more than one verb."""
    return next((q for q in mission_questions(mission, actions) if meaning(q)[0] == "verb"), None)


def verb_verdicts(mission: str, actions: tuple[str, ...], before: np.ndarray, after: np.ndarray,
                  success: bool) -> tuple[Situation | None, list[tuple[int, float]]]:
    """Where a step completed the mission: the verb cloze, and each of its answers with its
    verdict (1 for the verb of the step's act, 0 for the others); else no verdicts. A mission
    completed by no act of these (an instruction met where the agent already stood) counts as
    "go"."""
    cloze = verb_cloze(mission, actions) if success else None
    if cloze is None:
        return None, []
    word = VERB_WORDS[act_verb(before, after) or "go to"]
    return cloze, one_right(cloze, cloze.actions.index(word) if word in cloze.actions else -1)

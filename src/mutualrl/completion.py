"""The verb a mission means, judged by the act that completed it.

Which verb a mission asks for is read by the language model from the mission's words (the verb
cloze, `grounding`); a verb it does not map ("fetch the ball", "move the box close to the key") is
read wrong and stays so, since no decision judges the verb (`grounding.judged`: judged per
decision, the verbs drifted). The environment says it in another way: a mission ends in success on
the act its verb names (facing the object for "go", picking it up for "pick", dropping it for
"put", opening a door for "open"). So each act the student does to an object is a verdict on the
verb cloze: 1 where it completed the mission, 0 where it did not. Within the
cloze's records (`teachers.hf.improvement_targets` compares each answer with the others of its own
prompt) the verb whose act completes the mission gains, and the verbs whose acts never do lose.

Where the acts of one verb alone are ever seen (the go-to levels: the student only moves) there is
nothing to compare, and nothing moves; a student that never succeeds gives every verb 0 alike.
"""

from __future__ import annotations

import numpy as np

from mutualrl.envs import Situation
from mutualrl.grounding import VERB_WORDS, meaning, mission_questions
from mutualrl.subgoals import carried, front_object, faces_open_door


def act_verb(before: np.ndarray, after: np.ndarray) -> str | None:
    """The subgoal verb of what a step did to an object, from the views before and after it: "pick
    up" (now carrying), "put next to" (hands emptied), "open" (the door faced is now open), "go to"
    (now facing an object it did not face), or None."""
    holding, held = carried(after), carried(before)
    if holding is not None and held is None:
        return "pick up"
    if held is not None and holding is None:
        return "put next to"
    front = front_object(after)
    if front is not None and front == front_object(before) and faces_open_door(after) and not faces_open_door(before):
        return "open"
    if front is not None and front != front_object(before):
        return "go to"
    return None


def verb_cloze(mission: str, actions: tuple[str, ...]) -> Situation | None:
    """The mission's verb cloze, where the actions allow more than one verb."""
    return next((q for q in mission_questions(mission, actions) if meaning(q)[0] == "verb"), None)


def verb_verdict(mission: str, actions: tuple[str, ...], before: np.ndarray, after: np.ndarray,
                 success: bool) -> tuple[Situation, int, float] | None:
    """The verb cloze, the answer the step's act amounts to, and its verdict (1 where the act
    completed the mission, else 0); None where the step did nothing to an object or the mission has
    no verb to choose. A mission completed by no act of these (an instruction met where the agent
    already stood) counts as "go"."""
    cloze = verb_cloze(mission, actions)
    verb = act_verb(before, after) or ("go to" if success else None)
    if cloze is None or verb is None:
        return None
    word = VERB_WORDS[verb]
    if word not in cloze.actions:
        return None
    return cloze, cloze.actions.index(word), float(success)

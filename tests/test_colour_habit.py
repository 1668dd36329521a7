"""The colour cloze's kind share judged against the model's habit (`design.Design.habit`): "open
the door" is said whether or not the mission names the door's colour."""

import numpy as np
import pytest

from mutualrl import channel, design, reading
from mutualrl.envs import task_actions
from mutualrl.choice import choice_weights
from mutualrl.grounding import COLOURS, CONTENT_FREE, KINDS, meaning, mission_questions
from mutualrl.subgoals import EXPLORE
from views import view

ACTIONS = task_actions("BabyAI-OpenDoor-v0")
RED_DOOR_IN_VIEW = view(((3, 3), "door", "red", "closed"))


def _colour_answers(shares: dict[str, float]) -> np.ndarray:
    """A colour cloze's answers (colours, then kinds): `shares`, the rest spread evenly."""
    rest = (1.0 - sum(shares.values())) / (len(COLOURS) + len(KINDS) - len(shares))
    return np.array([shares.get(a, rest) for a in COLOURS + KINDS])


def _answers(questions) -> list[np.ndarray]:
    """The mission "open the grey door" restated "open the door" by habit (kind share 0.7, grey
    0.25), as the content-free mission is (0.93); the kind after a colour: the door; the verb: open."""
    probs = []
    for q in questions:
        asks = meaning(q)[1] if not channel.is_channel(q) else None
        if meaning(q)[0] == "verb":
            probs.append(np.array([0.97 if w == "open" else 0.01 for w in q.actions]))
        elif asks == "colour":
            probs.append(_colour_answers({"door": 0.93} if q.mission == CONTENT_FREE else {"door": 0.7, "grey": 0.25}))
        elif asks == "kind":
            probs.append(np.array([0.97 if k == "door" else 0.01 for k in KINDS]))
        else:
            probs.append(np.full(len(q.actions), 1.0 / len(q.actions)))
    return probs


@pytest.mark.parametrize("habit", [True, False])
def test_a_door_of_another_colour_in_view_loses_to_explore_only_against_the_habit(habit, monkeypatch):
    """Against the habit, the grey door the mission names outweighs a red one in view by more than
    the explore ratio, so the teacher explores; without it, the habit's kind share spreads the
    colour, and the red door is chosen."""
    monkeypatch.setattr(design, "DESIGN", design.Design(habit=habit, unshift=False))
    questions = mission_questions("open the grey door", ACTIONS)
    assert any(q.mission == CONTENT_FREE for q in questions) == habit
    options, weights = choice_weights(reading.Reading(questions, _answers(questions), ACTIONS), RED_DOOR_IN_VIEW)
    chosen = options[int(np.argmax(weights))].subgoal
    assert (chosen.verb == EXPLORE) == habit, chosen

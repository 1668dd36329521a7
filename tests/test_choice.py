"""The teacher's most likely subgoal counts every verb reading that leads to it (`choice.likeliest`), and
none whose object is in hand (`choice.choice_weights`)."""

import numpy as np
import pytest
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from mutualrl import channel, design
from mutualrl.choice import Option, choose, likeliest, subgoal_for
from mutualrl.envs import task_actions
from mutualrl.grounding import CONTENT_FREE, meaning, mission_questions
from mutualrl.subgoals import EXPLORE, Subgoal
from views import view

RED_BOX, BLUE_KEY = (7, 0), (5, 2)  # (object index, colour index): a box, a key


def _options(words_weights: list[tuple[str, float]], obj: tuple[int, int], carrying=None) -> tuple[list[Option], np.ndarray]:
    options = [Option(Subgoal(subgoal_for(word, obj, carrying)[0], obj), word, subgoal_for(word, obj, carrying)[1])
               for word, _ in words_weights]
    return options, np.array([w for _, w in words_weights])


def test_a_verb_split_between_readings_is_the_subgoal_most_of_them_say():
    # "fetch the red box": go 0.36, pick 0.35, put 0.19 (its first step picks the box up), open 0.10 (a box: gone to)
    options, weights = _options([("go", 0.36), ("pick", 0.35), ("put", 0.19), ("open", 0.10)], RED_BOX)
    assert options[int(np.argmax(weights))].subgoal.verb == "go to"
    chosen = options[likeliest(options, weights)]
    assert chosen.subgoal == Subgoal("pick up", RED_BOX) and chosen.word == "pick"


def test_words_that_cannot_apply_do_not_outvote_the_one_that_does():
    # the key in hand: pick and open cannot apply and go to the box; put puts the key next to it
    options, weights = _options([("put", 0.35), ("go", 0.30), ("pick", 0.20), ("open", 0.15)], RED_BOX, carrying=BLUE_KEY)
    assert sum(w for o, w in zip(options, weights) if o.subgoal.verb == "go to") > 0.35
    assert options[likeliest(options, weights)].subgoal == Subgoal("put next to", RED_BOX)


def test_by_reading_the_heaviest_reading_wins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(design, "DESIGN", design.Design(by_subgoal=False))
    options, weights = _options([("go", 0.36), ("pick", 0.35), ("put", 0.19), ("open", 0.10)], RED_BOX)
    assert options[likeliest(options, weights)].subgoal == Subgoal("go to", RED_BOX)


PUT_ACTIONS = task_actions("BabyAI-PutNextLocal-v0")
GREY_KEY = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["grey"])


def _move_box_answers(questions) -> list[np.ndarray]:
    """"move the red box close to the grey key" read as a teacher reads a verb it does not map: go
    0.35, pick 0.35, put 0.30; every role's object the red box, but put's fixed one the grey key;
    read the other way round, every verb and name alike."""
    probs = []
    for q in questions:
        role = meaning(q)[0]
        if channel.is_channel(q) or q.mission == CONTENT_FREE:
            probs.append(np.full(len(q.actions), 1.0 / len(q.actions)))
            continue
        sure = {"verb": {"go": 0.35, "pick": 0.35, "put": 0.30}}.get(role) or \
            ({"grey": 0.9, "key": 0.9} if role == "fixed" else {"red": 0.9, "box": 0.9})
        weights = np.array([sure.get(a, 0.001) for a in q.actions])
        probs.append(weights / weights.sum())
    return probs


@pytest.mark.parametrize("in_hand_done, chosen", [(True, Subgoal("put next to", GREY_KEY)), (False, Subgoal(EXPLORE))])
def test_a_reading_whose_object_is_in_hand_is_done(in_hand_done, chosen, monkeypatch: pytest.MonkeyPatch):
    """The box in hand and the key in view: read as going to the box or picking it up, the mission
    is done, and those readings no longer send the teacher looking for the box; putting it next to
    the key is left. Counted unseen, the box is explored for."""
    monkeypatch.setattr(design, "DESIGN", design.Design(in_hand_done=in_hand_done, unshift=False))
    questions = mission_questions("move the red box close to the grey key", PUT_ACTIONS)
    image = view(((2, 2), "key", "grey", "closed"), ((3, 6), "box", "red", "closed"))
    assert choose(questions, _move_box_answers(questions), image, PUT_ACTIONS)[0] == chosen

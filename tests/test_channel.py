"""The verb read the other way round: the mission's likelihood after each verb's usual words."""

import numpy as np
import pytest

from mutualrl import channel, design, grounding
from mutualrl.choice import choice_weights
from mutualrl.envs import task_actions
from mutualrl.grounding import COLOURS, meaning, mission_questions
from mutualrl.reading import Reading
from mutualrl.subgoals import EXPLORE
from mutualrl.teachers.base import answer_probs
from views import view

ACTIONS = task_actions("BabyAI-PutNextLocal-v0")


def _answers(questions, direct: dict[str, float], said: dict[str, float]) -> list[np.ndarray]:
    """The verb cloze answered `direct`, each channel cloze with its verb's likelihood in `said`."""
    probs = []
    for q in questions:
        if meaning(q)[0] == "verb":
            probs.append(np.array([direct[w] for w in q.actions]))
        elif channel.is_channel(q):  # (put's objects' clozes alike for every name)
            role, _, value = channel.about(q)
            probs.append(np.array([said[value] if role == "verb" else 1e-20]))
        else:
            probs.append(np.full(len(q.actions), 1.0 / len(q.actions)))
    return probs


def test_a_mission_far_likelier_after_one_verbs_usual_words_reads_as_that_verb():
    """The direct read leans to "go" (a verb it does not map); the mission ten thousand times as
    likely said after "put the object next to the other object" as after any other: "put" wins."""
    questions = mission_questions("move the red ball close to the blue key", ACTIONS)
    words = grounding.verb_words(ACTIONS)
    direct = {w: (0.55 if w == "go" else 0.45 / (len(words) - 1)) for w in words}
    said = {w: (1e-20 if w == "put" else 1e-24) for w in words}
    verbs = Reading(questions, _answers(questions, direct, said), ACTIONS).verbs
    assert max(verbs, key=verbs.get) == "put"
    alike = Reading(questions, _answers(questions, direct, {w: 1e-21 for w in words}), ACTIONS).verbs
    assert max(alike, key=alike.get) == "go" and np.allclose(list(alike.values()), list(direct.values()))


def test_without_the_channel_weight_and_the_location_prior_no_channel_cloze_is_asked(monkeypatch):
    monkeypatch.setattr(design, "DESIGN", design.Design(channel_weight=0.0, location_prior=0.0))
    assert not any(channel.is_channel(q) for q in mission_questions("fetch the ball", ACTIONS))


def test_a_question_of_one_answer_is_advised_its_likelihood_and_of_several_their_softmax():
    assert np.allclose(answer_probs(np.array([-3.0])), [np.exp(-3.0)])
    assert np.allclose(answer_probs(np.array([0.0, np.log(3.0)])), [0.25, 0.75])


DOOR_ACTIONS = task_actions("BabyAI-OpenDoor-v0")


def _door_answers(questions, grey_likelihood: float) -> list[np.ndarray]:
    """"get the grey door open" restated "open the door" (kind share 0.7, grey 0.25, as the model
    says it by habit), the verb open; the mission `grey_likelihood` after "open the grey door" and
    1e-22 after any other colour's door, every other usual words alike."""
    probs = []
    for q in questions:
        if channel.is_channel(q):
            role, part, value = channel.about(q)
            door_colour = (role, part) == ("open", "colour")
            probs.append(np.array([grey_likelihood if door_colour and value == "grey" else 1e-22]))
        elif meaning(q)[0] == "verb":
            probs.append(np.array([0.97 if w == "open" else 0.01 for w in q.actions]))
        elif meaning(q)[1] == "colour":
            rest = 0.05 / (len(q.actions) - 2)
            probs.append(np.array([{"door": 0.7, "grey": 0.25}.get(a, rest) for a in q.actions]))
        else:
            probs.append(np.array([0.97 if k == "door" else 0.01 for k in q.actions]))
    return probs


@pytest.mark.parametrize("door_channel, grey_likelihood, explores", [(True, 1e-20, True), (True, 1e-22, False),
                                                                     (False, 1e-20, False)])
def test_a_doors_colour_read_thin_is_made_sure_by_the_mission_read_the_other_way_round(
        door_channel, grey_likelihood, explores, monkeypatch):
    """Read forwards, the grey door's colour is spread thin and a red door in view outweighs
    exploring for the grey one; the mission a hundred times likelier after "open the grey door"
    makes grey sure enough that the teacher explores. Where every door's colour is alike likely,
    or the door's colour is not asked the other way round, the red door stays chosen."""
    monkeypatch.setattr(design, "DESIGN", design.Design(door_channel=door_channel, unshift=False))
    questions = mission_questions("get the grey door open", DOOR_ACTIONS)
    asked = [channel.about(q)[2] for q in questions if channel.is_channel(q) and channel.about(q)[:2] == ("open", "colour")]
    assert asked == (list(COLOURS) if door_channel else [])
    options, weights = choice_weights(Reading(questions, _door_answers(questions, grey_likelihood), DOOR_ACTIONS),
                                      view(((3, 3), "door", "red", "closed")))
    chosen = options[int(np.argmax(weights))].subgoal
    assert (chosen.verb == EXPLORE) == explores, chosen

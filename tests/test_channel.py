"""The verb read the other way round: the mission's likelihood after each verb's usual words."""

import numpy as np

from mutualrl import channel, design, grounding
from mutualrl.envs import task_actions
from mutualrl.grounding import meaning, mission_questions
from mutualrl.reading import Reading
from mutualrl.teachers.base import answer_probs

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

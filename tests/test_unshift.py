"""What feedback moved whatever the mission is read away (`design.Design.unshift`): a teacher
taught "go" on a level of go-to missions still reads "pick up the green key" as picking it up."""

import numpy as np
import pytest

from mutualrl import channel, grounding
from mutualrl.envs import task_actions
from mutualrl.grounding import CONTENT_FREE, Reading, meaning, mission_questions

ACTIONS = task_actions("BabyAI-PickupLoc-v0")


def _answers(questions, taught_go: float) -> list[np.ndarray]:
    """The verb cloze as a teacher taught towards "go" by `taught_go` (a factor on its odds, the
    same for every mission) answers it: the mission "pick up ..." untaught 0.8 "pick" and the rest
    spread, the content-free mission untaught evenly; every other cloze evenly."""
    probs = []
    for q in questions:
        if channel.is_channel(q) or meaning(q)[0] != "verb":
            probs.append(np.full(len(q.actions), 1.0 / len(q.actions)))
            continue
        words = list(q.actions)
        odds = np.full(len(words), 1.0) if q.mission == CONTENT_FREE else np.full(len(words), 0.2 / (len(words) - 1))
        if q.mission != CONTENT_FREE:
            odds[words.index("pick")] = 0.8
        odds[words.index("go")] *= 1.0 if q.untaught else taught_go
        probs.append(odds / odds.sum())
    return probs


@pytest.mark.parametrize("unshift", [True, False])
def test_a_verb_taught_whatever_the_mission_is_read_away(unshift, monkeypatch):
    monkeypatch.setattr(grounding, "DESIGN", grounding.Design(unshift=unshift))
    questions = mission_questions("pick up the green key", ACTIONS)
    assert any(q.mission == CONTENT_FREE and q.untaught for q in questions) == unshift
    taught = Reading(questions, _answers(questions, taught_go=20.0), ACTIONS).verbs
    if not unshift:
        assert taught["go"] > 0.5 and taught["go"] > taught["pick"]  # read as taught: "go"
        return
    untaught = Reading(questions, _answers(questions, taught_go=1.0), ACTIONS).verbs
    assert taught == pytest.approx(untaught)  # the shift is the same for every mission: none is left
    assert untaught["pick"] > untaught["go"]


def test_untaught_the_reading_is_the_one_without_unshift(monkeypatch):
    """Zero-shot (taught and untaught answers one), unshifting changes no probability."""
    questions = mission_questions("pick up the green key", ACTIONS)
    answers = dict(zip(questions, _answers(questions, taught_go=1.0)))
    read = {}
    for unshift in (True, False):
        monkeypatch.setattr(grounding, "DESIGN", grounding.Design(unshift=unshift))
        asked = mission_questions("pick up the green key", ACTIONS)
        reading = Reading(asked, [answers[q] for q in asked], ACTIONS)
        read[unshift] = (reading.verbs, reading.names)
    assert read[True][0] == pytest.approx(read[False][0])
    for role, names in read[False][1].items():
        np.testing.assert_allclose(read[True][1][role], names)


def test_a_taught_teacher_answers_one_prompt_both_as_taught_and_as_untaught(tiny_causal):
    """The content-free clozes are asked twice in one read, as the adapter answers them and as the
    untaught model does: after learning, the two answers differ, and the untaught one is the model's
    before it learnt."""
    from mutualrl.config import TeacherConfig
    from mutualrl.feedback import PromptFeedback
    from mutualrl.teachers.hf import HFTeacher

    questions = mission_questions("go to the red ball", ACTIONS)
    verb = next(q for q in questions if q.mission != CONTENT_FREE and not channel.is_channel(q) and meaning(q)[0] == "verb")
    free = [q for q in questions if q.mission == CONTENT_FREE and meaning(q)[0] == "verb"]
    assert sorted(q.untaught for q in free) == [False, True]
    teacher = HFTeacher(*tiny_causal, config=TeacherConfig(precision="float32", kl_coef=0.0, lr=0.02))
    before = teacher.advise(free)[0].probs
    go, pick = verb.actions.index("go"), verb.actions.index("pick")
    counts, completed = np.zeros(len(verb.actions)), np.zeros(len(verb.actions))
    counts[[go, pick]], completed[go] = (30, 10), 20  # every success went to the ball
    for _ in range(3):
        teacher.learn([PromptFeedback(verb, 40, counts, completed, teacher.advise([verb])[0].probs * 40, 0, 0)])
    taught, untaught = (a.probs for a in teacher.advise(free))
    np.testing.assert_allclose(untaught, before, atol=1e-6)
    assert np.abs(taught - untaught).max() > 1e-3

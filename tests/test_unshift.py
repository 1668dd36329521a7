"""What feedback moved whatever the mission is read away (`design.Design.unshift`): a teacher
taught "go" on a level of go-to missions still reads "pick up the green key" as picking it up."""

import numpy as np
import pytest

from mutualrl import channel, choice, design
from mutualrl.envs import task_actions
from mutualrl.grounding import CONTENT_FREE, meaning, mission_questions
from mutualrl.reading import Reading
from mutualrl.subgoals import Subgoal

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
    monkeypatch.setattr(design, "DESIGN", design.Design(unshift=unshift))
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
        monkeypatch.setattr(design, "DESIGN", design.Design(unshift=unshift))
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


def _verb_reads(questions, taught, free_taught, untaught, free_untaught) -> list[np.ndarray]:
    """The verb clozes answered as given (word -> probability; the mission's and the content-free
    mission's, as taught and as untaught), every other cloze evenly."""
    probs = []
    for q in questions:
        if channel.is_channel(q) or meaning(q)[0] != "verb":
            probs.append(np.full(len(q.actions), 1.0 / len(q.actions)))
            continue
        table = {(False, False): taught, (False, True): untaught,
                 (True, False): free_taught, (True, True): free_untaught}[(q.mission == CONTENT_FREE, q.untaught)]
        probs.append(np.array([table[w] for w in q.actions]))
    return probs


FREE_UNTAUGHT = {"go": 0.40, "pick": 0.167, "put": 0.275, "open": 0.158}


def test_a_vanishing_answer_is_not_raised_over_the_one_both_models_rank_first():
    """A teacher taught "go" for every mission (the reads of a run carried through the door
    curriculum, on `GoToObjMazeS4`): "put" is tiny for the mission and tinier for the content-free
    one, and the ratio alone reads "put"; the untaught model ranks "go" above "put", so "go" stays."""
    questions = mission_questions("go to the blue ball", ACTIONS)
    taught = {"go": 1 - 3e-7, "pick": 7.5e-14, "put": 3e-7, "open": 5e-20}
    free = {"go": 1.0, "pick": 1.9e-25, "put": 5.6e-15, "open": 6.9e-26}
    untaught = {"go": 0.30, "pick": 0.24, "put": 0.21, "open": 0.25}
    verbs = Reading(questions, _verb_reads(questions, taught, free, untaught, FREE_UNTAUGHT), ACTIONS).verbs
    assert max(verbs, key=verbs.get) == "go"  # (the shift read alone: "put", 0.99999)


def test_a_verb_the_untaught_model_ranks_first_is_still_brought_back():
    """Taught "go" on go-to missions, the teacher reads "open the purple door" as "go"; the ratio to
    the content-free mission raises "open", which the untaught model ranks first: it is read."""
    questions = mission_questions("open the purple door", ACTIONS)
    taught = {"go": 1 - 5.2e-8, "pick": 9.5e-11, "put": 4.4e-8, "open": 7.7e-9}
    free = {"go": 1 - 8.3e-8, "pick": 1e-10, "put": 8.2e-8, "open": 2.3e-10}
    untaught = {"go": 0.10, "pick": 0.06, "put": 0.07, "open": 0.77}
    verbs = Reading(questions, _verb_reads(questions, taught, free, untaught, FREE_UNTAUGHT), ACTIONS).verbs
    assert max(verbs, key=verbs.get) == "open"
    own = [q for q in questions if q.untaught and q.mission != CONTENT_FREE and not channel.is_channel(q)]
    assert own and all(a == -1 for q, a in zip(questions, choice.answers_for(
        questions, choice.Option(Subgoal("open", (4, 3, 1)), "open", "open"))) if q in own)


def test_a_near_tie_is_read_as_unshifted():
    """Where the taught model gave the answer that unshifting raises nearly as much as its own, the
    untaught ranking does not hold it back: the two models often rank near ties otherwise."""
    questions = mission_questions("pick up the green key", ACTIONS)
    taught = {"go": 0.40, "pick": 0.39, "put": 0.11, "open": 0.10}
    free = {"go": 0.60, "pick": 0.20, "put": 0.10, "open": 0.10}
    untaught = {"go": 0.35, "pick": 0.30, "put": 0.20, "open": 0.15}
    verbs = Reading(questions, _verb_reads(questions, taught, free, untaught, FREE_UNTAUGHT), ACTIONS).verbs
    assert max(verbs, key=verbs.get) == "pick"

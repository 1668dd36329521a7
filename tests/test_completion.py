"""The verb judged by the act that completed the mission (`completion`)."""

import numpy as np
import pytest
import torch

from mutualrl.config import GuidanceConfig, TeacherConfig
from mutualrl.envs import make_env, task_actions
from mutualrl.errors import MutualRLError
from mutualrl.feedback import build_subgoal_feedback
from mutualrl.grounding import mission_questions
from mutualrl.subgoal_guidance import SubgoalGuidance
from mutualrl.rollout import SubgoalDecision
from mutualrl.teachers import BotTeacher
from mutualrl.teachers.hf import HFTeacher
from driving import driven_by_the_bot
from test_subgoals import _rollout


def _verdicts(env_id: str, seed: int, judged: str = "at-success", floor: float = 0.0,
              successes_before: int = 0) -> tuple[int, list[tuple[int, str, float]]]:
    """The bot's episode of `env_id` (all seven actions, so every verb is a choice), after
    `successes_before` successful episodes of 100: the step that completed it, and each verb verdict
    the guidance recorded, as (step, verb word, verdict)."""
    envs = make_env(env_id, 1, seed=seed)
    obs, _ = envs.reset(seed=seed)
    config = GuidanceConfig(verb_judged=judged, verb_success_floor=floor)
    guidance = SubgoalGuidance(config, BotTeacher(through_clozes=True), np.random.default_rng(0),
                               torch.device("cpu"), 1, task_actions(env_id, "full"))
    guidance._recent.add([False] * (100 - successes_before) + [True] * successes_before)
    for step, _, reward, terminated in driven_by_the_bot(envs, obs, guidance, 200):
        if terminated:
            assert reward > 0
            break
    return step, [(d.start, d.questions[0].actions[d.answers[0]], d.verdict) for d in guidance.hindsight
                  if d.verdict is not None]


@pytest.mark.parametrize("env_id, verb", [("BabyAI-GoToLocal-v0", "go"), ("BabyAI-PickupLoc-v0", "pick"),
                                          ("BabyAI-PutNextLocal-v0", "put"), ("BabyAI-OpenDoor-v0", "open")])
def test_a_success_judges_the_verb_of_the_act_that_completed_it_right_and_every_other_verb_wrong(env_id, verb):
    for seed in range(3):
        completed, verdicts = _verdicts(env_id, seed)
        assert {start for start, _, _ in verdicts} == {completed}  # the acts on the way judge nothing
        assert sorted((word, value) for _, word, value in verdicts) == sorted(
            (word, float(word == verb)) for word in ("go", "pick", "put", "open"))


def test_the_verb_is_never_judged_unless_asked_and_a_bad_setting_is_one_line():
    assert _verdicts("BabyAI-PickupLoc-v0", 0, "never")[1] == []
    with pytest.raises(MutualRLError, match="unknown verb_judged 'always'; allowed: never, at-success"):
        GuidanceConfig(verb_judged="always").validate()


def test_a_student_that_rarely_succeeds_judges_no_verb():
    floor = GuidanceConfig().verb_success_floor
    assert floor > 0  # the default guards
    rare, frequent = round(100 * floor) - 2, round(100 * floor) - 1  # the bot's success makes one more
    assert _verdicts("BabyAI-PickupLoc-v0", 0, floor=floor, successes_before=rare)[1] == []
    assert len(_verdicts("BabyAI-PickupLoc-v0", 0, floor=floor, successes_before=frequent)[1]) == 4
    assert _verdicts("BabyAI-PickupLoc-v0", 0, floor=floor)[1] == []  # a first success alone is one in a hundred


def test_the_verdict_is_the_signal_of_the_verb_cloze_record():
    cloze = mission_questions("fetch the red ball", task_actions("BabyAI-PickupLoc-v0"))[0]
    go, pick = cloze.actions.index("go"), cloze.actions.index("pick")
    uniform = np.full(len(cloze.actions), 1 / len(cloze.actions))
    decisions = [SubgoalDecision(env=0, start=s, questions=[cloze], answers=[a], probs=[uniform], end=s + 1,
                                 reached=True, verdict=v) for s, a, v in ((0, go, 0.0), (1, go, 0.0), (2, pick, 1.0))]
    advantages = torch.full((3, 1), 5.0)  # the critic's signal: not what a verdict is judged on
    rollout = _rollout(3, 1, [])
    rollout.hindsight = decisions
    record = build_subgoal_feedback(rollout, advantages, "advantage", 0.99, lambda q: q.description + q.mission)
    (record,) = record.values()
    assert record.signal[go] == 0.0 and record.signal[pick] == 1.0 and record.counts[go] == 2


def test_a_teacher_learns_the_verb_its_students_acts_complete_and_moves_nowhere_without_a_comparison(tiny_causal):
    from mutualrl.feedback import PromptFeedback
    from mutualrl.teachers.hf import improvement_targets

    cloze = mission_questions("fetch the red ball", task_actions("BabyAI-PickupLoc-v0"))[0]
    go, pick = cloze.actions.index("go"), cloze.actions.index("pick")
    teacher = HFTeacher(*tiny_causal, config=TeacherConfig(precision="float32", kl_coef=0.1))
    before = teacher.advise([cloze])[0].probs

    def record(counts: dict[int, int], completed: dict[int, int]) -> PromptFeedback:
        n, s = np.zeros(len(cloze.actions)), np.zeros(len(cloze.actions))
        for answer, times in counts.items():
            n[answer], s[answer] = times, completed.get(answer, 0)
        visits = int(n.sum())
        return PromptFeedback(cloze, visits, n, s, before * visits, 0, 0)

    alone = record({go: 30}, {go: 10})  # one verb's acts only (a go-to level): nothing to compare
    assert np.allclose(improvement_targets([alone])[0], before)
    for _ in range(3):
        teacher.learn([record({go: 30, pick: 10}, {pick: 6})])
    after = teacher.advise([cloze])[0].probs
    assert after[pick] > before[pick] + 0.05 and after[go] < before[go]

"""Subgoal advice: candidates and prompts per level, the student's mask, the bot's subgoals,
the budget of teacher reads, and the loop with subgoals end to end."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from mutualrl.config import TrainConfig
from mutualrl.envs import FULL_ACTIONS, task_actions
from mutualrl.feedback import build_subgoal_feedback
from mutualrl.loop import Trainer
from mutualrl.rollout import SubgoalDecision
from mutualrl.evaluation import evaluate_subgoals
from mutualrl.subgoals import (EXPLORE, GROUNDING_QUESTION, Subgoal, SubgoalHands, candidate_questions, choose,
                               front_object, object_mask, question_object, stack_subgoals, visible_objects)
from mutualrl.teachers import BotTeacher
from mutualrl.teachers.prompt import question

LEVELS = ("BabyAI-GoToRedBall-v0", "BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0", "BabyAI-PutNextLocal-v0")


def _views(env_id: str, seeds: range):
    env = gym.make(env_id)
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        yield env.unwrapped, obs


@pytest.mark.parametrize("env_id", LEVELS)
def test_candidates_are_the_visible_objects_with_the_levels_verbs(env_id):
    actions = task_actions(env_id)
    prompts = set()
    for env, obs in _views(env_id, range(30)):
        objects, questions = candidate_questions(obs["mission"], obs["image"], actions)
        grid, visible = env.gen_obs_grid()
        in_view = {(OBJECT_TO_IDX[o.type], COLOR_TO_IDX[o.color]) for i in range(7) for j in range(7)
                   if visible[i, j] and (o := grid.get(i, j)) is not None and o.type in ("ball", "box", "key", "door")
                   and (i, j) != (3, 6)}
        assert set(objects) == in_view and len(objects) == len(in_view)
        for obj, q in zip(objects, questions):
            assert question_object(q) == obj and q.question == GROUNDING_QUESTION
            assert "step" not in question(q)  # never positions: one read serves every layout
            expected = ("go to it", "ignore it") if "GoTo" in env_id else ("go to it", "pick it up", "ignore it")
            assert q.actions == expected
            prompts.add(question(q))
    assert len(prompts) < 400  # the keys stay few: mission x object


def test_put_next_offers_putting_the_carried_object():
    env = gym.make("BabyAI-PutNextLocal-v0")
    obs, _ = env.reset(seed=0)
    bot = BotTeacher()
    last = None
    for _ in range(40):  # follow the bot until it carries the object to be moved
        action = bot.observe([env.unwrapped], [last])[0]
        obs, *_ = env.step(FULL_ACTIONS.index(action))
        last = action
        if env.unwrapped.carrying is not None:
            break
    assert env.unwrapped.carrying is not None
    _, questions = candidate_questions(obs["mission"], obs["image"], task_actions("BabyAI-PutNextLocal-v0"))
    assert questions and all(q.actions == ("go to it", "put what you carry next to it", "ignore it") for q in questions)
    assert all("You carry" in q.description for q in questions)


@pytest.mark.parametrize("env_id", LEVELS)
def test_mask_marks_exactly_the_named_objects_cells(env_id):
    for env, obs in _views(env_id, range(10)):
        grid, visible = env.gen_obs_grid()
        objects, _ = candidate_questions(obs["mission"], obs["image"], task_actions(env_id))
        for obj in objects:
            mask = object_mask(obs["image"], obj)
            truth = np.array([[visible[i, j] and (o := grid.get(i, j)) is not None and (i, j) != (3, 6)
                               and (OBJECT_TO_IDX[o.type], COLOR_TO_IDX[o.color]) == obj for j in range(7)]
                              for i in range(7)])
            assert mask.any() and np.array_equal(mask, truth)


@pytest.mark.parametrize("env_id", LEVELS)
def test_bot_subgoal_teacher_agrees_with_the_bots_stack(env_id):
    """Along the bot's own episodes, the bot teacher's subgoal (through the grounding prompts and
    the choice) is one the stack of an independent bot means, and the verbs follow the mission."""
    actions = task_actions(env_id)
    teacher, driver = BotTeacher(), BotTeacher()
    verbs = set()
    env = gym.make(env_id)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        last = None
        for _ in range(64):
            want = driver.observe([env.unwrapped], [last])[0]
            teacher.observe([env.unwrapped], [last])
            objects, questions = candidate_questions(obs["mission"], obs["image"], actions)
            answers = teacher.advise(questions, envs=[env.unwrapped] * len(questions)) if questions else []
            chosen, _ = choose(objects, questions, [a.probs for a in answers])
            assert chosen in stack_subgoals(driver._bots[id(env.unwrapped)], env.unwrapped, obs["image"])
            verbs.add(chosen.verb)
            obs, reward, terminated, truncated, _ = env.step(FULL_ACTIONS.index(want))
            last = want
            if terminated or truncated:
                assert reward > 0
                break
    expected = {"GoTo": {"go to"}, "Pickup": {"pick up"}, "PutNext": {"pick up", "put next to"}}
    assert next(v for k, v in expected.items() if k in env_id) <= verbs <= next(
        v for k, v in expected.items() if k in env_id) | {EXPLORE}


def test_the_planner_goes_where_it_is_told_not_where_the_mission_says():
    """A subgoal teacher acting alone chooses what to do: told to go to a distractor, the bot's
    planner takes the agent there, and the mission is not done."""
    for env, obs in _views("BabyAI-GoToLocal-v0", range(50)):
        target = (OBJECT_TO_IDX[env.instrs.desc.type], COLOR_TO_IDX[env.instrs.desc.color or "red"])
        others = [o for o in visible_objects(obs["image"]) if o[0] != target[0] or o[1] != target[1]]
        if others and env.instrs.desc.color is not None:
            break
    hands, told, last = SubgoalHands(), Subgoal("go to", others[0]), None
    for _ in range(30):
        last = hands.act(env, told, last)
        obs, reward, terminated, *_ = env.step(FULL_ACTIONS.index(last))
        if front_object(obs["image"]) == told.obj:
            break
    assert front_object(obs["image"]) == told.obj and reward == 0


@pytest.mark.parametrize("env_id", ["BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0"])
def test_the_bots_own_subgoals_carried_out_by_its_planner_solve_the_level(env_id):
    bot = evaluate_subgoals(BotTeacher(), env_id, 10, 0, task_actions(env_id, "full"))
    assert bot.subgoal_accuracy == 1.0 and bot.success_rate >= 0.9


def test_choice_follows_the_teachers_answers():
    """Each prompt's answer counts once, on the chosen verb for the chosen object and `ignore it` elsewhere."""
    env = gym.make("BabyAI-GoToLocal-v0")
    obs, _ = next((o, i) for o, i in (env.reset(seed=s) for s in range(50))
                  if len(candidate_questions(o["mission"], o["image"], task_actions("BabyAI-GoToLocal-v0"))[0]) >= 2)
    objects, questions = candidate_questions(obs["mission"], obs["image"], task_actions("BabyAI-GoToLocal-v0"))
    probs = [np.array([0.1, 0.9])] * len(objects)
    probs[1] = np.array([0.95, 0.05])
    chosen, answers = choose(objects, questions, probs)
    assert chosen == Subgoal("go to", objects[1]) and answers == [1, 0] + [1] * (len(objects) - 2)
    all_ignored, answers = choose(objects, questions, [np.array([0.0, 1.0])] * len(objects))
    assert all_ignored == Subgoal(EXPLORE) and answers == [1] * len(objects)


def test_subgoal_feedback_gives_each_prompt_the_signal_of_the_steps_under_its_choice():
    env = gym.make("BabyAI-GoToLocal-v0")
    obs, _ = env.reset(seed=3)
    _, questions = candidate_questions(obs["mission"], obs["image"], task_actions("BabyAI-GoToLocal-v0"))
    q = questions[0]
    steps, envs = 6, 2
    advantages = torch.arange(steps * envs, dtype=torch.float32).view(steps, envs)
    decisions = [SubgoalDecision(env=0, start=0, questions=[q], answers=[0], probs=[np.array([0.5, 0.5])], end=3,
                                 reached=True),
                 SubgoalDecision(env=1, start=2, questions=[q], answers=[1], probs=[np.array([0.2, 0.8])]),
                 SubgoalDecision(env=1, start=0, questions=[q], answers=[0], probs=[np.array([0.9, 0.1])], end=2,
                                 stale=True)]  # chosen from an older version's answers: left out
    rollout = _rollout(steps, envs, decisions)
    records = build_subgoal_feedback(rollout, advantages, "advantage", 0.99, question)
    record = records[question(q)]
    assert record.visits == 2 and record.counts.tolist() == [1, 1]
    assert record.signal[0] == pytest.approx(advantages[0:3, 0].mean().item())
    assert record.signal[1] == pytest.approx(advantages[2:, 1].mean().item())  # held to the rollout's end
    assert record.policy == pytest.approx([0.35, 0.65])


def test_an_endpoint_teacher_learns_subgoals_through_its_prompt_memory(tiny_causal):
    from mutualrl.teachers.endpoint import EndpointTeacher
    from openai_server import OpenAICompatibleServer

    env = gym.make("BabyAI-GoToLocal-v0")
    obs, _ = env.reset(seed=3)
    _, questions = candidate_questions(obs["mission"], obs["image"], task_actions("BabyAI-GoToLocal-v0"))
    decisions = [SubgoalDecision(env=0, start=0, questions=questions[:1], answers=[0], probs=[np.array([0.5, 0.5])],
                                 end=2, reached=True),
                 SubgoalDecision(env=1, start=0, questions=questions[:1], answers=[1], probs=[np.array([0.5, 0.5])],
                                 end=2)]
    advantages = torch.tensor([[1.0, -1.0], [1.0, -1.0]])
    records = build_subgoal_feedback(_rollout(2, 2, decisions), advantages, "advantage", 0.99, question)
    with OpenAICompatibleServer(*tiny_causal) as server:
        teacher = EndpointTeacher(server.url, timeout=5)
        before = teacher.advise(questions[:1])[0].probs
        teacher.learn(list(records.values()))
        after = teacher.advise(questions[:1])[0].probs
    message = teacher.user_message(questions[0])
    assert "'go to it' helped" in message and "'ignore it' hurt" in message
    assert not np.allclose(before, after)


def _rollout(steps, envs, decisions):
    from mutualrl.rollout import AdviceRecord, Rollout

    zeros = torch.zeros(steps, envs)
    advice = AdviceRecord.stack([AdviceRecord.none(envs, 5, 3, torch.device("cpu"))] * steps)
    return Rollout(obs={}, advice=advice, actions=zeros.long(), logprobs=zeros, values=zeros, rewards=zeros,
                   dones=zeros, successes=np.zeros((steps, envs), bool), next_value=torch.zeros(envs),
                   situations=None, keys=[[""] * envs] * steps, decisions=decisions)


SMALL = dict(env_id="BabyAI-GoToLocal-v0", num_envs=4, num_steps=32, eval_every=0, advice="subgoal")


@pytest.mark.parametrize("advice", ["action", "subgoal"])
def test_the_budget_of_teacher_reads_is_never_exceeded(tmp_path, advice):
    """Action advice reads within the step; subgoal advice reads what the last rollout asked for,
    in one batch before the next (so its first rollout reads nothing and goes on alone)."""
    config = TrainConfig().replace(**{**SMALL, "advice": advice}, mode="guided", teacher="tiny", frames=384,
                                   teacher_budget=3)
    trainer = Trainer(config, tmp_path, quiet=True)
    calls, advised = [0], []
    for _ in range(4):
        row = trainer.iterate()
        calls.append(row["teacher_calls"])
        advised.append(row["advised_fraction"])
        assert row["reads_per_1024_frames"] * config.frames_per_iteration / 1024 <= 3
        assert row["advised_fraction"] < 1  # some steps went on without advice
    reads = np.diff(calls)
    assert (reads <= 3).all() and reads[1:].all()  # the model itself read at most 3 new prompts, and did read
    assert (reads[0] > 0) == (advice == "action") and advised[-1] > 0


def test_mutual_with_subgoals_learns_the_teacher_and_resumes(tmp_path):
    config = TrainConfig().replace(**{**SMALL, "eval_every": 4}, mode="mutual", teacher="tiny", frames=512, eval_episodes=2,
                                   teacher_update_every=2, teacher_update_steps=1, teacher_batch=4)
    trainer = Trainer(config, tmp_path, quiet=True)
    summary = trainer.train()
    rows = trainer.run.read_metrics()
    assert rows[-1]["teacher_version"] == 2 and rows[-1]["teacher_feedback_prompts"] > 0
    assert 0 <= rows[3]["subgoal_accuracy"] <= 1 and "subgoal_accuracy" in summary["teacher_after"]
    assert {"subgoals_reached_rate", "prompts_per_1024_frames", "reads_per_1024_frames"} <= rows[-1].keys()
    resumed = Trainer.resume(tmp_path, frames=640, quiet=True)
    assert resumed.teacher.version == 2 and resumed.student.advice_dim == trainer.student.advice_dim
    resumed.train()


def test_hindsight_judges_the_object_the_student_itself_went_to():
    """Driven by the bot's actions to success on GoToLocal, the last hindsight record asks about the
    mission's target and counts `go to it`, from the episode's final view (not the next episode's)."""
    from mutualrl.envs import make_env, unwrapped_envs
    from mutualrl.guidance import SubgoalGuidance
    from mutualrl.config import GuidanceConfig

    envs = make_env("BabyAI-GoToLocal-v0", 1, seed=5)
    obs, _ = envs.reset(seed=5)
    actions = task_actions("BabyAI-GoToLocal-v0")
    guidance = SubgoalGuidance(GuidanceConfig(), BotTeacher(), np.random.default_rng(0), torch.device("cpu"), 1, actions)
    driver = BotTeacher()
    guidance.start_rollout()
    last = None
    for step in range(64):
        live = unwrapped_envs(envs)
        target = live[0].instrs.desc
        want = driver.observe(live, [last])[0]
        guidance.teacher.observe(live, [last])
        guidance.advise(obs, live, step, np.zeros(1))
        obs, reward, terminated, truncated, info = envs.step(np.array([FULL_ACTIONS.index(want)]))
        guidance.after_step(obs, terminated | truncated, terminated & (reward > 0), info, step)
        last = want
        if terminated[0]:
            break
    assert terminated[0] and reward[0] > 0
    final = guidance.hindsight[-1]
    obj = question_object(final.questions[0])
    assert final.start == step and final.questions[0].actions[final.answers[0]] == "go to it"
    assert obj[0] == OBJECT_TO_IDX[target.type] and (target.color is None or obj[1] == COLOR_TO_IDX[target.color])
    assert guidance.decisions and guidance.decisions[-1].reached  # the bot's last subgoal was reached


def test_the_local_teacher_learns_from_prompts_with_different_answers():
    """Grounding prompts offer different answers (a door can be opened, a ball picked up): one
    LoRA update takes them all, and each prompt moves towards the answer that paid off."""
    from mutualrl.config import TeacherConfig
    from mutualrl.feedback import PromptFeedback
    from mutualrl.subgoals import grounding_question
    from mutualrl.teachers import make_teacher

    actions = task_actions("BabyAI-PickupLoc-v0")
    ball = grounding_question("pick up the red ball", (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"]), None, actions)
    door = grounding_question("pick up the red ball", (OBJECT_TO_IDX["door"], COLOR_TO_IDX["red"]), None, actions)
    assert ball.actions != door.actions
    teacher = make_teacher("tiny", config=TeacherConfig(update_steps=8, batch_size=2, lr=0.02, kl_coef=0.0))
    before = [a.probs for a in teacher.advise([ball, door])]
    good, bad = ball.actions.index("pick it up"), door.actions.index("ignore it")
    records = []
    for q, paid in ((ball, good), (door, bad)):
        counts = np.zeros(len(q.actions))
        counts[paid] = 1
        signal = np.zeros(len(q.actions))
        signal[paid] = 3.0
        other = (paid + 1) % len(q.actions)
        counts[other], signal[other] = 1, -3.0
        records.append(PromptFeedback(q, 2, counts, signal, np.full(len(q.actions), 2 / len(q.actions)), 0, 0))
    teacher.learn(records)
    after = [a.probs for a in teacher.advise([ball, door])]
    assert after[0][good] > before[0][good] and after[1][bad] > before[1][bad]


def test_a_deferred_prompt_keeps_the_teachers_last_answer(tiny_causal):
    """Beyond the budget, the answer of an older version stands (recall) until the teacher re-reads."""
    from mutualrl.teachers.hf import HFTeacher

    env = gym.make("BabyAI-GoToLocal-v0")
    obs, _ = env.reset(seed=3)
    _, questions = candidate_questions(obs["mission"], obs["image"], task_actions("BabyAI-GoToLocal-v0"))
    teacher = HFTeacher(*tiny_causal)
    assert teacher.recall(questions) == [None] * len(questions)
    answers = teacher.advise(questions)
    teacher.bump_version()
    assert not any(teacher.knows(q) for q in questions)
    calls = teacher.calls
    recalled = teacher.recall(questions)
    assert teacher.calls == calls and all(np.allclose(r.probs, a.probs) for r, a in zip(recalled, answers))


def test_the_students_grounding_learns_the_teachers_subgoals_before_any_trust(tmp_path):
    """The grounding head is an input the policy may ignore, so it learns from every subgoal the
    teacher names, with trust still 0: its loss is paid from the first iteration and falls."""
    config = TrainConfig().replace(**SMALL, mode="guided", teacher="bot", frames=4 * 128, advice_prob=1.0)
    trainer = Trainer(config, tmp_path, quiet=True)
    rows = [trainer.iterate() for _ in range(4)]
    assert rows[0]["trust"] == 0.0 and rows[0]["guidance_loss"] > 0
    assert rows[-1]["guidance_loss"] < 0.7 * rows[0]["guidance_loss"]


@pytest.mark.parametrize("env_id", ["BabyAI-PickupDist-v0", "BabyAI-GoToObj-v0", "BabyAI-GoToLocal-v0"])
def test_the_bots_reference_reads_every_kind_of_object_description(env_id):
    """Missions name an object by colour alone ("pick up a red object"), by type alone, or by
    both: the bot's stack reads as subgoals on the objects in view that match, or explore."""
    driver = BotTeacher()
    env = gym.make(env_id)
    described = set()
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        desc = env.unwrapped.instrs.desc
        described.add((desc.type is None, desc.color is None))
        want = driver.observe([env.unwrapped], [None])[0]
        subgoals = stack_subgoals(driver._bots[id(env.unwrapped)], env.unwrapped, obs["image"])
        assert subgoals and all(s.verb in ("go to", "pick up", EXPLORE) for s in subgoals)
        assert want in FULL_ACTIONS
    if env_id == "BabyAI-PickupDist-v0":
        assert (False, True) in described or (True, False) in described  # a description without type or colour

"""Subgoal advice: the clozes about a mission and the choice from their answers, the student's
mask, the bot's subgoals, the budget of teacher reads, and the loop with subgoals end to end."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from mutualrl import channel, locations
from mutualrl.config import TrainConfig
from mutualrl.envs import FULL_ACTIONS, Situation, registered_env_ids, task_actions
from mutualrl.feedback import build_subgoal_feedback
from mutualrl.loop import Trainer
from mutualrl.rollout import HELD, SubgoalDecision
from mutualrl.teachers.hf import improvement_targets
from mutualrl.evaluation import evaluate_subgoals
from mutualrl.choice import choose
from mutualrl.grounding import CONTENT_FREE, COLOURS, KINDS, meaning, mission_questions, verb_words, words_of
from mutualrl.expert import SubgoalHands, stack_subgoals
from mutualrl.subgoals import EXPLORE, Subgoal, carried, front_object, object_mask, visible_objects
from mutualrl.teachers import BotTeacher
from mutualrl.teachers.prompt import question
from driving import driven_by_the_bot

LEVELS = ("BabyAI-GoToRedBall-v0", "BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0", "BabyAI-PutNextLocal-v0")


def _views(env_id: str, seeds: range):
    env = gym.make(env_id)
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        yield env.unwrapped, obs


@pytest.mark.parametrize("env_id", LEVELS)
def test_the_clozes_ask_about_the_mission_alone_and_offer_every_name(env_id):
    """The keys hold the mission and no scene: one read per (mission, cloze) serves every state."""
    for space in ("task", "full"):
        actions = task_actions(env_id, space)
        words = verb_words(actions)
        keys, missions = set(), set()
        for env, obs in _views(env_id, range(30)):
            questions = mission_questions(obs["mission"], actions)
            own = [q for q in questions if q.mission != CONTENT_FREE and (channel.is_channel(q) or not q.untaught)]
            asked_untaught = [q for q in questions if q.mission != CONTENT_FREE and q not in own]  # to unshift
            assert asked_untaught == [dataclasses.replace(q, untaught=True) for q in own if not channel.is_channel(q)]
            roles = {meaning(q)[0] for q in own} - {"verb", "channel"}
            assert roles == {w for w in words if w != "put"} | ({"move", "fixed"} if "put" in words else set())
            assert any(meaning(q)[0] == "verb" for q in own) == (len(words) > 1)
            said = [q for q in own if meaning(q)[0] == "channel"]  # read the other way round: one per verb word,
            verbs = [q for q in said if channel.about(q)[0] == "verb"]  # per colour and kind of put's objects,
            places = [q for q in said if channel.about(q)[1] == "place"]  # and per place of a placed verb's object
            placed = [w for w in words if w in locations.PLACED_VERBS]
            assert len(places) == len(locations.PLACES) * len(placed)
            assert len(verbs) == (len(words) if len(words) > 1 else len(placed))  # (placed nowhere: the verb's own)
            assert len(said) - len(verbs) - len(places) == (2 * (len(COLOURS) + len(KINDS)) if "put" in words else 0)
            assert all(q.actions == (obs["mission"] + ".",) for q in said)
            for q in (q for q in questions if q not in said):
                assert q.cloze and q.mission in (obs["mission"], CONTENT_FREE) and "You see" not in question(q)
                assert q.actions in (COLOURS + KINDS, KINDS, words)
            keys.update(question(q) for q in own)
            missions.add(obs["mission"])
        assert len(keys) == len(missions) * len(own)  # nothing but the mission varies


def test_the_clozes_read_no_mission_word():
    """The questions of any two missions differ only in the mission: no code reads its words, so
    a mission worded as no template words it is asked the same clozes (the verb asked the other
    way round offers the mission as its answer)."""
    actions = task_actions("BabyAI-PutNextLocal-v0")
    missions = ("put the red ball next to the blue key", "kindly place that crimson sphere beside a teal gadget")
    original, reworded = (mission_questions(m, actions) for m in missions)

    def without(mission: str, q: Situation) -> Situation:
        return dataclasses.replace(q, actions=("",)) if q.actions == (f"{mission}.",) else dataclasses.replace(q, mission="")

    assert [without(missions[0], q) for q in original] == [without(missions[1], q) for q in reworded]


def test_put_next_puts_the_carried_object_next_to_the_fixed_one():
    """With the verb `put`, empty hands mean picking up the object to move; carrying it, putting it
    next to the other one, as the bot's stack says."""
    env = gym.make("BabyAI-PutNextLocal-v0")
    obs, _ = env.reset(seed=0)
    actions = task_actions("BabyAI-PutNextLocal-v0")
    bot, driver, last, verbs = BotTeacher(), BotTeacher(), None, set()
    for _ in range(60):
        action = driver.observe([env.unwrapped], [last])[0]
        bot.observe([env.unwrapped], [last])
        questions = mission_questions(obs["mission"], actions)
        chosen, _ = choose(questions, [a.probs for a in bot.advise(questions, [env.unwrapped] * len(questions))],
                           obs["image"], actions)
        verbs.add(chosen.verb)
        assert chosen.verb != "put next to" or carried(obs["image"]) is not None
        obs, reward, terminated, *_ = env.step(FULL_ACTIONS.index(action))
        last = action
        if terminated:
            break
    assert {"pick up", "put next to"} <= verbs and reward > 0


@pytest.mark.parametrize("env_id", LEVELS)
def test_mask_marks_exactly_the_named_objects_cells(env_id):
    for env, obs in _views(env_id, range(10)):
        grid, visible = env.gen_obs_grid()
        for obj in visible_objects(obs["image"]):
            mask = object_mask(obs["image"], obj)
            truth = np.array([[visible[i, j] and (o := grid.get(i, j)) is not None and (i, j) != (3, 6)
                               and (OBJECT_TO_IDX[o.type], COLOR_TO_IDX[o.color]) == obj for j in range(7)]
                              for i in range(7)])
            assert mask.any() and np.array_equal(mask, truth)


@pytest.mark.parametrize("env_id", LEVELS)
def test_bot_subgoal_teacher_agrees_with_the_bots_stack(env_id):
    """Along the bot's own episodes, the bot teacher's subgoal (through its answers to the clozes
    and the choice) is one the stack of an independent bot means, and the verbs follow the mission."""
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
            questions = mission_questions(obs["mission"], actions)
            answers = teacher.advise(questions, envs=[env.unwrapped] * len(questions))
            chosen, _ = choose(questions, [a.probs for a in answers], obs["image"], actions)
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


def _one_hot(question, answer):
    probs = np.full(len(question.actions), 0.01)
    probs[question.actions.index(answer)] = 1.0
    return probs / probs.sum()


def _answers(questions, colour, kind=None):
    """A teacher sure of `colour` and, given it, of `kind` (unsure of the kind where None), and
    without bias (uniform about the content-free mission)."""
    out = []
    for q in questions:
        _, asks, given = meaning(q)
        if q.mission == CONTENT_FREE:  # no bias to calibrate away
            out.append(np.full(len(q.actions), 1.0 / len(q.actions)))
        elif asks == "colour":
            out.append(_one_hot(q, colour))
        elif asks == "kind" and given == colour and kind is not None:
            out.append(_one_hot(q, kind))
        else:
            out.append(np.full(len(q.actions), 1.0 / len(q.actions)))
    return out


def test_choice_follows_the_teachers_answers():
    """The object whose name the answers make likely is chosen where it is in view, explore where
    it is not; a name by colour alone picks a visible object of that colour; the choice counts
    once on the chosen colour and kind."""
    actions = task_actions("BabyAI-GoToLocal-v0")
    env = gym.make("BabyAI-GoToLocal-v0")
    obs = next(o for o, _ in (env.reset(seed=s) for s in range(50)) if len(visible_objects(o["image"])) >= 2)
    image, seen = obs["image"], visible_objects(obs["image"])
    questions = mission_questions("go to the thing", actions)
    colour, kind = words_of(seen[1])
    chosen, answers = choose(questions, _answers(questions, colour, kind), image, actions)
    assert chosen == Subgoal("go to", seen[1])
    assert [(meaning(q)[1], q.actions[a]) for q, a in zip(questions, answers) if a >= 0] == [("colour", colour),
                                                                                             ("kind", kind)]
    unseen = next((c, k) for c in COLOURS for k in KINDS if (c, k) not in {words_of(o) for o in seen})
    chosen, answers = choose(questions, _answers(questions, *unseen), image, actions)
    assert chosen == Subgoal(EXPLORE) and answers == [-1] * len(questions)
    chosen, _ = choose(questions, _answers(questions, colour), image, actions)
    assert chosen.verb == "go to" and words_of(chosen.obj)[0] == colour


def _shared(probs):
    """Answers as a teacher serves them: one read-only array per prompt and version."""
    for p in probs:
        p.setflags(write=False)
    return probs


def test_a_choice_from_shared_answers_follows_each_new_version():
    """Answers a teacher shares are read once per version (`reading.read`); a new version's
    answers, new arrays, are read anew, and writable answers changed in place are read as they
    now stand."""
    actions = task_actions("BabyAI-GoToLocal-v0")
    env = gym.make("BabyAI-GoToLocal-v0")
    obs = next(o for o, _ in (env.reset(seed=s) for s in range(50)) if len(visible_objects(o["image"])) >= 2)
    image, seen = obs["image"], visible_objects(obs["image"])
    questions = mission_questions("go to the thing", actions)
    first, second = _shared(_answers(questions, *words_of(seen[0]))), _shared(_answers(questions, *words_of(seen[1])))
    for probs, obj in ((first, seen[0]), (first, seen[0]), (second, seen[1]), (first, seen[0])):
        assert choose(questions, probs, image, actions)[0] == Subgoal("go to", obj)
    changing = _answers(questions, *words_of(seen[0]))
    assert choose(questions, changing, image, actions)[0] == Subgoal("go to", seen[0])
    for row, now in zip(changing, _answers(questions, *words_of(seen[1]))):
        row[:] = now
    assert choose(questions, changing, image, actions)[0] == Subgoal("go to", seen[1])


def test_a_mission_without_a_colour_means_any_object_of_its_kind():
    """Where the colour cloze is answered with a kind ("go to the {ball}"), the mission names no
    colour: any visible object of that kind is chosen over explore, whatever its colour, and the
    choice counts on the kind in the colour cloze (feedback confirms the reading rather than
    teaching the mission a colour)."""
    actions = task_actions("BabyAI-GoToLocal-v0")
    env = gym.make("BabyAI-GoToLocal-v0")
    for seed in range(50):
        obs, _ = env.reset(seed=seed)
        seen = visible_objects(obs["image"])
        kinds = [words_of(o)[1] for o in seen]
        kind = next((k for k in kinds if kinds.count(k) == 1 and k != "door"), None)
        if kind is not None:
            break
    questions = mission_questions("go to the thing", actions)
    probs = [_one_hot(q, kind) if meaning(q)[1] in ("colour", "kind") else np.full(len(q.actions), 1 / len(q.actions))
             for q in questions]
    unseen = next(c for c in COLOURS if (c, kind) not in {words_of(o) for o in seen})
    colour_cloze = next(i for i, q in enumerate(questions) if meaning(q)[1] == "colour")
    probs[colour_cloze][questions[colour_cloze].actions.index(unseen)] += 0.05  # the colours' answers alone say another
    chosen, answers = choose(questions, probs, obs["image"], actions)
    assert chosen.verb == "go to" and words_of(chosen.obj)[1] == kind
    said = {meaning(q): q.actions[a] for q, a in zip(questions, answers) if a >= 0}
    assert said == {("go", "colour", None): kind, ("go", "kind", words_of(chosen.obj)[0]): kind}


def test_feedback_keeps_a_reading_of_whether_the_mission_names_a_colour():
    """An act is as consistent with "the red ball" as with "a ball": a colour cloze's target keeps
    the colours' and the kinds' shares of the reading given (the untaught model's, in the update)
    and moves answers within them; other clozes' targets are the plain improvement step."""
    from mutualrl.feedback import PromptFeedback
    from mutualrl.verdicts import kept_reading

    colour, kind = mission_questions("go to the red ball", task_actions("BabyAI-GoToLocal-v0"))[:2]
    records = []
    for q, said in ((colour, ("red", "blue")), (kind, ("ball", "key"))):
        policy = np.full(len(q.actions), 0.01)
        policy[q.actions.index(said[0])] = 0.8
        policy = policy / policy.sum()
        counts = np.zeros(len(q.actions))
        counts[[q.actions.index(w) for w in said]] = 4
        signal = counts * np.where(np.arange(len(q.actions)) == q.actions.index(said[0]), -1.0, 1.0)  # the said answer did worse
        records.append((q, policy, PromptFeedback(q, 8, counts, signal, policy * 8, 0, 0)))
    targets = improvement_targets([r for _, _, r in records])
    (_, colour_policy, _), (_, kind_policy, _) = records
    n = len(COLOURS)
    untaught = np.full(len(colour.actions), 0.3 / (len(colour.actions) - n))
    untaught[:n] = 0.7 / n
    kept = kept_reading(colour, targets[0], untaught)
    assert np.isclose(kept[n:].sum(), 0.3) and np.isclose(kept.sum(), 1)
    blue, red = colour.actions.index("blue"), colour.actions.index("red")
    assert kept[blue] / kept[red] == pytest.approx(targets[0][blue] / targets[0][red])  # moved within the colours
    assert targets[0][blue] > colour_policy[blue]
    assert np.allclose(kept_reading(kind, targets[1], untaught), targets[1])  # not a colour cloze
    plain = targets[1] / kind_policy
    assert np.isclose(plain[kind.actions.index("box")], plain[kind.actions.index("door")])  # untaken: one factor
    assert targets[1][kind.actions.index("box")] > kind_policy[kind.actions.index("box")]  # and it gained


def test_subgoal_feedback_gives_each_prompt_the_signal_of_the_steps_under_its_choice():
    q, other = mission_questions("go to the red ball", task_actions("BabyAI-GoToLocal-v0"))[:2]
    steps, envs = 6, 2
    advantages = torch.arange(steps * envs, dtype=torch.float32).view(steps, envs)
    uniform = np.full(len(q.actions), 1 / len(q.actions))
    decisions = [SubgoalDecision(env=0, start=0, questions=[q, other], answers=[0, -1], probs=[uniform, uniform],
                                 end=3, reached=True),
                 SubgoalDecision(env=1, start=2, questions=[q], answers=[1], probs=[np.eye(len(q.actions))[1]]),
                 SubgoalDecision(env=1, start=0, questions=[q], answers=[0], probs=[uniform], end=2,
                                 stale=True)]  # chosen from an older version's answers: left out
    rollout = _rollout(steps, envs, decisions)
    records = build_subgoal_feedback(rollout, advantages, "advantage", 0.99, question)
    assert question(other) not in records  # a cloze with no part in the choice (-1) is not judged
    record = records[question(q)]
    assert record.visits == 2 and record.counts.tolist()[:3] == [1, 1, 0]
    assert record.signal[0] == pytest.approx(advantages[0:3, 0].mean().item())
    assert record.signal[1] == pytest.approx(advantages[2:, 1].mean().item())  # held to the rollout's end
    assert record.policy == pytest.approx((uniform + np.eye(len(q.actions))[1]) / 2)


def test_a_cloze_read_but_not_judged_is_held_where_it_stands():
    """A held cloze (`HELD`) gets a record with no answer counted, so its learning target is the
    teacher's own reading there, whatever the signal; a cloze with no part (-1) gets none."""
    q, other = mission_questions("go to the red ball", task_actions("BabyAI-GoToLocal-v0"))[:2]
    reading = np.linspace(1, 2, len(q.actions))
    reading /= reading.sum()
    decisions = [SubgoalDecision(env=0, start=0, questions=[q, other], answers=[HELD, -1], probs=[reading, reading], end=2),
                 SubgoalDecision(env=1, start=0, questions=[q], answers=[HELD], probs=[reading], end=2)]
    advantages = torch.tensor([[5.0, -3.0], [1.0, 0.0]])
    records = build_subgoal_feedback(_rollout(2, 2, decisions), advantages, "advantage", 0.99, question)
    assert list(records) == [question(q)] and records[question(q)].visits == 2 and not records[question(q)].counts.any()
    assert improvement_targets([records[question(q)]])[0] == pytest.approx(reading)


def test_an_endpoint_teacher_learns_subgoals_through_its_prompt_memory(tiny_causal):
    from mutualrl.teachers.endpoint import EndpointTeacher
    from openai_server import OpenAICompatibleServer

    questions = mission_questions("go to the red ball", task_actions("BabyAI-GoToLocal-v0"))
    uniform = np.full(len(COLOURS), 1 / len(COLOURS))
    decisions = [SubgoalDecision(env=0, start=0, questions=questions[:1], answers=[0], probs=[uniform], end=2,
                                 reached=True),
                 SubgoalDecision(env=1, start=0, questions=questions[:1], answers=[1], probs=[uniform], end=2)]
    advantages = torch.tensor([[1.0, -1.0], [1.0, -1.0]])
    records = build_subgoal_feedback(_rollout(2, 2, decisions), advantages, "advantage", 0.99, question)
    with OpenAICompatibleServer(*tiny_causal) as server:
        teacher = EndpointTeacher(server.url, timeout=5)
        before = teacher.advise(questions[:1])[0].probs
        teacher.learn(list(records.values()))
        after = teacher.advise(questions[:1])[0].probs
    message = teacher.user_message(questions[0])
    assert "'red' helped" in message and "'green' hurt" in message
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
    budget = 7  # one mission's clozes on GoToLocal
    config = TrainConfig().replace(**{**SMALL, "advice": advice}, mode="guided", teacher="tiny", frames=384,
                                   teacher_budget=budget)
    trainer = Trainer(config, tmp_path, quiet=True)
    calls, advised = [0], []
    for _ in range(4):
        row = trainer.iterate()
        calls.append(row["teacher_calls"])
        advised.append(row["advised_fraction"])
        assert row["reads_per_1024_frames"] * config.frames_per_iteration / 1024 <= budget
        assert row["advised_fraction"] < 1  # some steps went on without advice
    reads = np.diff(calls)
    assert (reads <= budget).all() and reads[1:].all()  # the model itself read within the budget, and did read
    assert (reads[0] > 0) == (advice == "action") and advised[-1] > 0


def test_under_a_budget_the_prompts_asked_as_untaught_are_read_too(tmp_path):
    """A prompt asked both as taught and as untaught (`Design.unshift`) shares one prompt key: the
    budget's queue keeps both, so the untaught read that every mission's choice needs comes."""
    config = TrainConfig().replace(**SMALL, mode="guided", teacher="tiny", frames=384, teacher_budget=7)
    trainer = Trainer(config, tmp_path, quiet=True)
    for _ in range(6):
        trainer.iterate()
    assert trainer.teacher.untaught


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
    """Driven by the bot's actions to success on GoToLocal, the last hindsight record counts the
    mission's target as the answer to its clozes, from the episode's final view (not the next
    episode's)."""
    from mutualrl.envs import make_env, unwrapped_envs
    from mutualrl.subgoal_guidance import SubgoalGuidance
    from mutualrl.config import GuidanceConfig

    envs = make_env("BabyAI-GoToLocal-v0", 1, seed=5)
    obs, _ = envs.reset(seed=5)
    target = unwrapped_envs(envs)[0].instrs.desc
    actions = task_actions("BabyAI-GoToLocal-v0")
    guidance = SubgoalGuidance(GuidanceConfig(), BotTeacher(), np.random.default_rng(0), torch.device("cpu"), 1, actions)
    for step, _, reward, terminated in driven_by_the_bot(envs, obs, guidance, 64):
        if terminated:
            break
    assert terminated and reward > 0
    final = guidance.hindsight[-1]
    said = {meaning(q)[1]: q.actions[a] for q, a in zip(final.questions, final.answers)}
    assert final.start == step and said["kind"] == target.type and said["colour"] == (target.color or said["colour"])
    assert guidance.decisions and guidance.decisions[-1].reached  # the bot's last subgoal was reached


@pytest.mark.parametrize("verb, carrying", [("go to", None), ("pick up", None), ("go to", (5, 1))])
def test_hindsight_judges_the_object_and_never_the_verb(verb, carrying):
    """An act shows which object the student dealt with, not which verb the mission means: with
    every verb offered, hindsight on a pick-up mission answers the object's clozes (its colour
    and kind, in each role the act can serve) and leaves the verb cloze alone."""
    from mutualrl.verdicts import hindsight

    ball = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"])
    questions, answers = hindsight("pick up the red ball", FULL_ACTIONS, ball, verb, carrying)
    said = [(meaning(q), q.actions[a]) for q, a in zip(questions, answers)]
    assert said and all(what[0] != "verb" for what, _ in said)
    assert {word for (_, part, _), word in said if part == "colour"} == {"red"}
    assert {word for (_, part, _), word in said if part == "kind"} == {"ball"}
    assert any(meaning(q)[0] == "verb" for q in mission_questions("pick up the red ball", FULL_ACTIONS))  # it has one


def test_hindsight_judges_only_the_roles_of_the_verb_the_teacher_reads():
    """Given the teacher's reading of the verb, an act is judged as that verb would read it: going
    to an object teaches a put mission's go-to role nothing (the object to move is picked up, not
    gone to), and picking it up teaches the object to move."""
    from mutualrl.verdicts import hindsight

    mission, ball = "put the red ball next to the blue key", (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"])
    verb_cloze = next(q for q in mission_questions(mission, FULL_ACTIONS) if meaning(q)[0] == "verb")
    reads = {word: _one_hot(verb_cloze, word) for word in verb_cloze.actions}
    roles = lambda questions: {meaning(q)[0] for q in questions}  # noqa: E731
    assert roles(hindsight(mission, FULL_ACTIONS, ball, "go to", None)[0]) >= {"go", "open"}  # every verb's reading
    assert hindsight(mission, FULL_ACTIONS, ball, "go to", None, reads["put"]) == ([], [])
    assert roles(hindsight(mission, FULL_ACTIONS, ball, "go to", None, reads["go"])[0]) == {"go"}
    questions, answers = hindsight(mission, FULL_ACTIONS, ball, "pick up", None, reads["put"])
    assert roles(questions) == {"move"} and {q.actions[a] for q, a in zip(questions, answers)} == {"red", "ball"}


def test_a_decision_is_judged_on_its_object_and_never_its_verb():
    """The steps under a subgoal judge its verb by how such subgoals end, not by the mission: with
    every verb offered, the teacher's decisions give feedback to the object's clozes only."""
    from mutualrl.config import GuidanceConfig
    from mutualrl.envs import make_env, unwrapped_envs
    from mutualrl.subgoal_guidance import SubgoalGuidance

    envs = make_env("BabyAI-PickupLoc-v0", 4, seed=0)
    obs, _ = envs.reset(seed=0)
    guidance = SubgoalGuidance(GuidanceConfig(), BotTeacher(through_clozes=True), np.random.default_rng(0), torch.device("cpu"), 4,
                               FULL_ACTIONS)
    guidance.start_rollout()
    guidance.teacher.observe(unwrapped_envs(envs), [None] * 4)
    guidance.advise(obs, unwrapped_envs(envs), 0, np.zeros(4))
    chosen = [d for d in guidance.decisions if any(a >= 0 for a in d.answers)]
    assert chosen  # some copy sees an object and chose one
    for d in chosen:
        assert any(meaning(q)[0] == "verb" for q in d.questions)  # the verb was asked ...
        assert all(a < 0 for q, a in zip(d.questions, d.answers) if meaning(q)[0] == "verb")  # ... and is not judged
        assert {meaning(q)[1] for q, a in zip(d.questions, d.answers) if a >= 0} == {"colour", "kind"}


def test_the_local_teacher_learns_from_prompts_with_different_answers():
    """The verb and colour clozes offer different answers: one LoRA update takes them all, and each
    cloze moves towards the answer that paid off."""
    from mutualrl.config import TeacherConfig
    from mutualrl.feedback import PromptFeedback
    from mutualrl.teachers import make_teacher

    verb, colour = mission_questions("pick up the red ball", task_actions("BabyAI-PickupLoc-v0"))[:2]
    assert verb.actions != colour.actions
    teacher = make_teacher("tiny", config=TeacherConfig(update_steps=8, batch_size=2, lr=0.02, kl_coef=0.0))
    before = [a.probs for a in teacher.advise([verb, colour])]
    good = [verb.actions.index("pick"), colour.actions.index("red")]
    records = []
    for q, paid in zip((verb, colour), good):
        counts = np.zeros(len(q.actions))
        counts[paid] = 1
        signal = np.zeros(len(q.actions))
        signal[paid] = 3.0
        other = (paid + 1) % len(q.actions)
        counts[other], signal[other] = 1, -3.0
        records.append(PromptFeedback(q, 2, counts, signal, np.full(len(q.actions), 2 / len(q.actions)), 0, 0))
    teacher.learn(records)
    after = [a.probs for a in teacher.advise([verb, colour])]
    assert after[0][good[0]] > before[0][good[0]] and after[1][good[1]] > before[1][good[1]]


def test_a_deferred_prompt_keeps_the_teachers_last_answer(tiny_causal):
    """Beyond the budget, the answer of an older version stands (recall) until the teacher re-reads
    (a question read once by the untaught model stays known)."""
    from mutualrl.teachers.hf import HFTeacher

    questions = mission_questions("go to the red ball", task_actions("BabyAI-PickupLoc-v0"))
    teacher = HFTeacher(*tiny_causal)
    assert teacher.recall(questions) == [None] * len(questions)
    answers = teacher.advise(questions)
    teacher.bump_version()
    assert not any(teacher.knows(q) for q in questions if not q.untaught)
    assert any(q.untaught for q in questions) and all(teacher.knows(q) for q in questions if q.untaught)
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


BABYAI_LEVELS = [e for e in registered_env_ids() if e.startswith("BabyAI-")]


@pytest.mark.parametrize("env_id", BABYAI_LEVELS)
def test_every_babyai_level_runs_subgoal_advice_and_its_evaluation(env_id):
    """A few steps of subgoal advice by the bot teacher (its answers to the clozes, the choice,
    hindsight) and of the teacher's evaluation (the choice judged against the bot's stack, and
    carried out by the planner), whatever the mission's descriptions and their number."""
    from mutualrl.config import GuidanceConfig
    from mutualrl.envs import make_env, unwrapped_envs
    from mutualrl.evaluation import _subgoal_choices
    from mutualrl.subgoal_guidance import SubgoalGuidance

    actions = task_actions(env_id, "full")
    envs = make_env(env_id, 1, seed=0)
    obs, _ = envs.reset(seed=0)
    teacher, driver, hands = BotTeacher(), BotTeacher(), SubgoalHands()
    guidance = SubgoalGuidance(GuidanceConfig(), teacher, np.random.default_rng(0), torch.device("cpu"), 1, actions)
    choices = _subgoal_choices(BotTeacher(), env_id, actions)
    guidance.start_rollout()
    last = None
    for step in range(4):
        live = unwrapped_envs(envs)
        want = driver.observe(live, [last])[0]
        teacher.observe(live, [last])
        record = guidance.advise(obs, live, step, np.zeros(1))
        sits = [Situation(obs["mission"][0], "", actions, last)]
        chosen = choices(obs, sits, live, np.array([last is None]))[0]
        assert chosen in driver.expert_subgoals(live[0], obs["image"][0]) or chosen.verb == EXPLORE
        assert hands.act(live[0], chosen, last) in FULL_ACTIONS and record.available.shape == (1,)
        obs, reward, terminated, truncated, info = envs.step(np.array([FULL_ACTIONS.index(want)]))
        guidance.after_step(obs, terminated | truncated, terminated & (reward > 0), info, step)
        last = None if terminated[0] or truncated[0] else want
    assert guidance.decisions


def test_a_reworded_mission_still_gets_clozes_and_a_subgoal(tiny_causal):
    """Words no template uses: the teacher is still asked about the mission and names a subgoal."""
    from mutualrl.config import GuidanceConfig
    from mutualrl.envs import make_env, unwrapped_envs
    from mutualrl.subgoal_guidance import SubgoalGuidance
    from mutualrl.teachers.hf import HFTeacher

    actions = task_actions("BabyAI-PutNextLocal-v0")
    envs = make_env("BabyAI-PutNextLocal-v0", 2, seed=0)
    obs, _ = envs.reset(seed=0)
    mission = "kindly carry that crimson sphere over beside a teal gadget"
    obs = {**obs, "mission": np.array([mission] * 2)}
    guidance = SubgoalGuidance(GuidanceConfig(), HFTeacher(*tiny_causal), np.random.default_rng(0), torch.device("cpu"),
                               2, actions)
    guidance.start_rollout()
    guidance.advise(obs, unwrapped_envs(envs), 0, np.zeros(2))
    held = [h for h in guidance.held if h is not None]
    assert len(held) == 2 and all(h.decision.questions for h in held)
    assert all(q.cloze and (q.mission in (mission, CONTENT_FREE) or q.actions == (f"{mission}.",))
               for h in held for q in h.decision.questions)
    for h, image in zip(held, obs["image"]):
        assert h.subgoal.verb == EXPLORE or h.subgoal.obj in visible_objects(image)


def test_the_subgoal_reward_is_paid_once_per_subgoal_and_episode():
    """Facing the named object pays; facing it again in the same episode does not (a student
    could farm it by turning away and back); a new episode pays again; explore never pays."""
    from mutualrl.config import GuidanceConfig
    from mutualrl.subgoal_guidance import SubgoalGuidance, _Held

    actions = task_actions("BabyAI-GoToLocal-v0")
    guidance = SubgoalGuidance(GuidanceConfig(subgoal_reward=0.5), BotTeacher(), np.random.default_rng(0),
                               torch.device("cpu"), 1, actions)
    guidance.start_rollout()
    ball = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"])
    facing = np.zeros((1, 7, 7, 3), dtype=np.uint8)
    facing[0, 3, 5, :2] = ball
    away = np.zeros_like(facing)
    guidance._before = (away, ["go to the red ball"])
    paid = []
    for subgoal, done in ((Subgoal("go to", ball), False), (Subgoal("go to", ball), True), (Subgoal("go to", ball), False),
                          (Subgoal(EXPLORE), False)):
        decision = SubgoalDecision(env=0, start=0, questions=[], answers=[], probs=[])
        guidance.held[0] = _Held(subgoal, decision, True, "k", [])
        image = away if subgoal.verb == EXPLORE else facing
        paid.append(float(guidance.after_step({"image": image}, np.array([done]), np.array([False]),
                                              {"final_obs": [{"image": image[0]}]}, 0)[0]))
    assert paid == [0.5, 0.0, 0.5, 0.0]


def test_the_progress_reward_pays_each_step_nearer_than_before_once_per_episode():
    """Coming nearer the named object than ever before in the episode pays per step of the grid;
    stepping back and coming again pays nothing (it cannot be farmed); reaching it counts as 0
    steps away; a new episode pays again."""
    from mutualrl.config import GuidanceConfig
    from mutualrl.subgoal_guidance import SubgoalGuidance, _Held

    actions = task_actions("BabyAI-GoToLocal-v0")
    guidance = SubgoalGuidance(GuidanceConfig(subgoal_progress=0.1), BotTeacher(), np.random.default_rng(0),
                               torch.device("cpu"), 1, actions)
    guidance.start_rollout()
    ball = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"])

    def ahead(cells: int) -> np.ndarray:
        image = np.zeros((1, 7, 7, 3), dtype=np.uint8)
        image[0, 3, 6 - cells, :2] = ball
        return image

    paid, before = [], ahead(3)
    for cells, done in ((3, False), (2, False), (3, False), (2, False), (1, False), (3, True), (2, False)):
        if guidance.held[0] is None:
            decision = SubgoalDecision(env=0, start=0, questions=[], answers=[], probs=[])
            guidance.held[0] = _Held(Subgoal("go to", ball), decision, True, "k", [])
        guidance._before, image = (before, ["go to the red ball"]), ahead(cells)
        paid.append(round(float(guidance.after_step({"image": image}, np.array([done]), np.array([False]),
                                                    {"final_obs": [{"image": image[0]}]}, 0)[0]), 6))
        before = ahead(3) if done else image
    assert paid == [0.0, 0.1, 0.0, 0.0, 0.2, 0.0, 0.1]

"""The next step asked with the facts of the state: on door levels only, keyed by the facts, its
verb following from the object and the hands, and able to say every step of a door level."""

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from mutualrl.config import GuidanceConfig
from mutualrl.envs import has_locked_doors, make_env, task_actions
from mutualrl.facts import state_facts
from mutualrl.evaluation import evaluate_subgoals, subgoal_agreement
from mutualrl.grounding import COLOURS, KINDS, meaning, mission_questions
from mutualrl.rollout import HELD
from mutualrl.sequences import PartsDone
from mutualrl.subgoal_guidance import SubgoalGuidance
from mutualrl.steps import NEXT, EpisodeSoFar, Segments, choose, state_questions, step_questions, step_verb
from mutualrl.subgoals import EXPLORE, Subgoal
from mutualrl.teachers import BotTeacher
from driving import driven_by_the_bot
from views import view

KEY, DOOR, BOX = (OBJECT_TO_IDX[k] for k in ("key", "door", "box"))
RED, GREY = COLOR_TO_IDX["red"], COLOR_TO_IDX["grey"]


@pytest.mark.parametrize("env_id", ["BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0", "BabyAI-PutNextLocal-v0"])
def test_levels_without_doors_ask_the_missions_clozes_alone(env_id):
    actions, image = task_actions(env_id), view(((3, 2), "ball", "red", "open"))
    steps = has_locked_doors(env_id)
    assert not steps and state_questions("pick up the red ball", image, actions, steps) == \
        mission_questions("pick up the red ball", actions)


def test_the_step_is_asked_with_the_facts_and_one_read_serves_states_with_the_same_facts():
    actions = task_actions("BabyAI-UnlockLocal-v0")
    here = view(((3, 2), "door", "red", "locked"), ((1, 4), "key", "red", "open"))
    elsewhere = view(((6, 0), "door", "red", "locked"), ((5, 5), "key", "red", "open"))
    asked = state_questions("open the red door", here, actions, True)
    steps = [q for q in asked if q not in mission_questions("open the red door", actions)]
    assert steps == list(step_questions("open the red door", here)) == list(step_questions("open the red door", elsewhere))
    assert "The red door is locked." in steps[0].question and steps[0].actions == COLOURS + KINDS
    holding = view(((3, 6), "key", "red", "open"), ((3, 2), "door", "red", "locked"))
    assert step_questions("open the red door", holding)[0].question != steps[0].question


def test_the_rule_is_told_at_every_state_or_where_a_locked_door_or_a_key_in_hand_asks_for_it(monkeypatch):
    """The benchmark's other forms (`--rule locked`, `--rule "locked or key"`: docs/results.md)."""
    import mutualrl.steps as steps

    opened = view(((3, 2), "door", "red", "open"), ((1, 4), "key", "red", "open"))
    locked = view(((3, 2), "door", "red", "locked"), ((1, 4), "key", "red", "open"))

    def told(image) -> bool:
        return steps.RULE in step_questions("pick up the grey box", image)[0].question

    holding = view(((3, 6), "key", "red", "open"), ((3, 2), "door", "red", "open"))
    assert told(opened) and told(locked) and told(holding)
    monkeypatch.setattr(steps, "RULE_WHERE", "locked")
    assert not told(opened) and told(locked) and not told(holding)
    monkeypatch.setattr(steps, "RULE_WHERE", "locked or key")
    assert not told(opened) and told(locked) and told(holding)


@pytest.mark.parametrize("env_id, asked", [("BabyAI-UnlockLocal-v0", True), ("BabyAI-KeyCorridorS3R1-v0", True),
                                            ("BabyAI-OpenDoor-v0", False), ("BabyAI-GoToObjMazeS4-v0", False)])
def test_the_step_is_asked_on_levels_with_locked_doors(env_id, asked):
    """Where doors are only closed, the mission's clozes name the door it means (asked there, the
    step's named it less often: docs/results.md)."""
    assert has_locked_doors(env_id) == asked


def test_the_steps_verb_follows_from_the_object_and_the_hands():
    pick = {"go": 0.1, "pick": 0.9}
    key, door, box = (KEY, RED), (DOOR, RED), (BOX, GREY)
    empty = view(((1, 4), "key", "red", "open"), ((3, 2), "door", "red", "locked"), ((5, 4), "box", "grey", "open"))
    assert [step_verb(o, empty, pick) for o in (key, door, box)] == ["pick up", "open", "pick up"]
    full = view(((3, 6), "key", "red", "open"), ((3, 2), "door", "red", "open"), ((5, 4), "box", "grey", "open"))
    assert [step_verb(o, full, pick) for o in (door, box)] == ["go to", "drop"]
    assert step_verb(box, empty, {"go": 0.8, "pick": 0.2}) == "go to"


def test_a_named_key_is_the_choice_where_the_mission_names_the_door():
    """The mission's clozes say "the red door", the step's "the red key": the step decides."""
    actions = task_actions("BabyAI-UnlockLocal-v0")
    image = view(((3, 2), "door", "red", "locked"), ((1, 4), "key", "red", "open"))
    questions = state_questions("open the red door", image, actions, True)

    def answer(q):  # the verb "open", the mission's object the red door, the step's the red key
        role, asks, _ = meaning(q)
        word = "open" if role == "verb" else "red" if asks == "colour" else "key" if role == NEXT else "door"
        return np.where(np.asarray(q.actions) == word, 1.0, 0.01) / (1 + 0.01 * (len(q.actions) - 1))

    subgoal, answers = choose(questions, [answer(q) for q in questions], image, actions)
    assert subgoal == Subgoal("pick up", (KEY, RED))
    judged = [q for q, a in zip(questions, answers) if a >= 0]
    assert judged and all(meaning(q)[0] == NEXT for q in judged)  # the step's clozes, not the mission's


@pytest.mark.parametrize("named, step", [("key", Subgoal("explore")), ("ball", Subgoal("explore"))])
def test_a_missing_key_named_against_the_locked_door_in_view_is_searched_for(named, step):
    """The facts tell the locked door's key is not in view: named the next object more surely than
    the door, it is searched for; the door named, its key is searched for too."""
    actions = task_actions("BabyAI-UnlockLocal-v0")
    image = view(((3, 2), "door", "red", "locked"))
    assert "The red key is not in view." in state_facts(image)
    questions = state_questions("open the red door", image, actions, True)

    def answer(q):  # the mission's clozes: open the red door; the step's: red, then `named` 0.6, door 0.4
        role, asks, _ = meaning(q)
        if role == NEXT and asks == "kind":
            want = {named: 0.6, "door": 0.4}
            return np.array([want.get(a, 0.0) for a in q.actions]) + 1e-6
        word = "open" if role == "verb" else "red" if asks == "colour" else "door"
        return np.where(np.asarray(q.actions) == word, 1.0, 0.01) / (1 + 0.01 * (len(q.actions) - 1))

    assert choose(questions, [answer(q) for q in questions], image, actions)[0] == step


@pytest.mark.parametrize("held, key, step", [(None, (1, 4), Subgoal("pick up", (KEY, RED))),
                                             ("red", None, Subgoal("open", (DOOR, RED))),
                                             (None, None, Subgoal(EXPLORE)),
                                             ("green", None, Subgoal("drop"))])
def test_a_locked_door_named_without_its_key_in_hand_is_its_key(held, key, step):
    """Its key is taken where in view, looked for where not (full hands emptied first); only with
    the key in hand is the door opened. The bot never opens such a door first."""
    actions = task_actions("BabyAI-UnlockLocal-v0")
    things = [((3, 2), "door", "red", "locked")] + ([(key, "key", "red", "open")] if key else []) + \
        ([((3, 6), "key" if held == "red" else "ball", held, "open")] if held else [])
    image = view(*things)
    questions = state_questions("open the red door", image, actions, True)
    opens = [np.where(np.asarray(q.actions) == ("open" if meaning(q)[0] == "verb" else "red" if meaning(q)[1] == "colour"
                      else "door"), 1.0, 0.01) for q in questions]
    assert choose(questions, opens, image, actions)[0] == step


@pytest.mark.parametrize("env_id", ["BabyAI-UnlockPickup-v0", "BabyAI-BlockedUnlockPickup-v0"])
def test_answered_as_the_bot_plans_the_step_clozes_say_its_steps(env_id):
    """The bot answering the clozes (the text teacher's upper bound): its step is the choice in
    nearly every state along its episodes, keys, doors, the ball in the way and the drops
    included (the mission's clozes alone could say neither a key nor a drop)."""
    result = evaluate_subgoals(BotTeacher(through_clozes=True), env_id, 6, 0)
    assert result.subgoal_accuracy >= 0.9


def test_the_states_missed_are_counted_with_what_each_side_said():
    """`benchmarks/step_misses.py` reads them: each a state where the teacher's subgoal is not in
    the bot's stack, as many as the accuracy leaves."""
    misses, moves = Counter(), Counter()
    accuracy = subgoal_agreement(BotTeacher(through_clozes=True), "BabyAI-BlockedUnlockPickup-v0", 3, 0, misses=misses)
    assert 0 < accuracy < 1 and misses
    assert all(said not in stack.split(" | ") and facts.startswith("You carry") for said, stack, facts in misses)
    assert subgoal_agreement(BotTeacher(), "BabyAI-BlockedUnlockPickup-v0", 3, 0, misses=moves) == 1.0 and not moves


@pytest.mark.parametrize("env_id", ["BabyAI-GoToLocal-v0", "BabyAI-UnlockLocal-v0"])
def test_the_step_is_asked_at_every_decision_where_a_level_has_locked_doors_and_never_elsewhere(env_id):
    """From the first decision of a rollout to the last, as the level decides: the guidance's
    counters (steps advised, reads) never stand in for it."""
    envs = make_env(env_id, 1, seed=0)
    obs, _ = envs.reset(seed=0)
    asks = has_locked_doors(env_id)
    guidance = SubgoalGuidance(GuidanceConfig(), BotTeacher(through_clozes=True), np.random.default_rng(0),
                               torch.device("cpu"), 1, task_actions(env_id), steps=asks)
    for _ in driven_by_the_bot(envs, obs, guidance, 30):
        pass
    asked = [any(meaning(q)[0] == NEXT for q in d.questions) for d in guidance.decisions if d.questions]
    assert len(asked) > 1 and asked == [asks] * len(asked)


def _step_records(guidance):
    """Per step cloze judged in hindsight, keyed by its facts and its lead: each answer's verdict,
    and how many answers the cloze offers."""
    records = {}
    for d in guidance.hindsight:
        for q, a in zip(d.questions, d.answers):
            if meaning(q)[0] == NEXT and a >= 0:
                verdicts, _ = records.setdefault((q.question.split(" A locked door")[0], q.description), ({}, len(q.actions)))
                verdicts[q.actions[a]] = d.verdict
    return records


def _unlock_local_driven_by_the_bot(floor: float, steps: int):
    envs = make_env("BabyAI-UnlockLocal-v0", 1, seed=0)
    obs, _ = envs.reset(seed=0)
    guidance = SubgoalGuidance(GuidanceConfig(verb_success_floor=floor), BotTeacher(through_clozes=True),
                               np.random.default_rng(0), torch.device("cpu"), 1, task_actions("BabyAI-UnlockLocal-v0"),
                               steps=True)
    seen, picked = [state_facts(obs["image"][0])], None
    for _, live, _, terminated in driven_by_the_bot(envs, obs, guidance, steps):
        if terminated:
            return guidance, seen, picked, True
        assert not _step_records(guidance)  # nothing is judged before the episode's end
        seen.append(state_facts(live.gen_obs()["image"]))
        picked = picked or (live.carrying and len(seen) - 1)
    return guidance, seen, picked, False


def test_a_success_judges_each_state_with_the_object_the_student_dealt_with_next():
    """Driven by the bot on UnlockLocal: the key picked up, then the door opened. At the success,
    the step's clozes of every distinct state before the pick-up (hands empty, the door locked or
    not yet seen) are judged right on the key, those after it on the door, and wrong on every
    other answer they offer."""
    guidance, seen, picked, succeeded = _unlock_local_driven_by_the_bot(0.0, 200)
    assert succeeded and picked
    records = _step_records(guidance)
    right = {}
    for (facts, lead), (verdicts, offered) in records.items():
        assert len(verdicts) == offered and sorted(verdicts.values()) == [0.0] * (offered - 1) + [1.0]
        right[facts, lead] = next(word for word, verdict in verdicts.items() if verdict == 1.0)
    keys = {facts for (facts, _), word in right.items() if word == "key"}
    doors = {facts for (facts, _), word in right.items() if word == "door"}
    assert keys == set(seen[:picked]) and doors == set(seen[picked:])
    assert len(keys) > 1 and all(facts.startswith("You carry a") for facts in doors)


def test_the_object_in_hand_and_a_pick_up_repeated_and_put_down_again_are_no_step():
    """A student that dithers on UnlockPickup: the key picked up, put down, picked up again, the door
    opened, the key put down, picked up again and put down, then the box taken. The states holding
    the key wait for the next other act (the door; after it, the box), and those the repeated
    pick-up after the door closed wait for the box; the first pick-ups' states stay the key's."""
    key, door, box = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["red"]), (OBJECT_TO_IDX["door"], COLOR_TO_IDX["red"]), \
        (OBJECT_TO_IDX["box"], COLOR_TO_IDX["grey"])
    floor_key, in_hand, the_box = ((2, 4), "key", "red", "open"), ((3, 6), "key", "red", "open"), ((4, 2), "box", "grey", "open")
    locked, opened = ((3, 1), "door", "red", "locked"), ((3, 1), "door", "red", "open")
    segments, right = Segments(1), {}

    def see(name, *cells):
        segments.see(0, view(*cells))
        right[state_facts(view(*cells))] = name

    see("key", locked, floor_key)
    segments.dealt(0, key, picked=True)
    see("door", locked, in_hand)
    segments.dropped(0)
    see("key", locked, ((2, 5), "key", "red", "open"))
    segments.dealt(0, key, picked=True)
    segments.dealt(0, door)
    see("box", opened, in_hand)
    segments.dropped(0)
    see("box", opened, floor_key, the_box)
    segments.dealt(0, key, picked=True)
    see("box", opened, in_hand, the_box)
    segments.dropped(0)
    segments.dealt(0, box, picked=True)
    judged = {state_facts(image): {key: "key", door: "door", box: "box"}[obj] for image, obj in segments.ended(0)}
    assert judged == right and len(right) == 5  # (the key on the floor before the door: the same facts twice)
    assert not segments.ended(0)


def test_a_success_moves_a_step_the_teacher_read_wrong_where_no_decision_of_its_compares():
    """A teacher sure of "key" at every state (as one taught on the states before the pick-up came
    to read it with the key in hand, then chose explore there: judged on nothing): the success's
    records alone move each kind cloze after the pick-up towards the door, before it towards the key."""
    from mutualrl.feedback import build_subgoal_feedback
    from mutualrl.teachers.hf import improvement_targets
    from test_subgoals import _rollout

    guidance, *_ = _unlock_local_driven_by_the_bot(0.0, 200)
    rollout = _rollout(1, 1, [])
    rollout.hindsight = [dataclasses.replace(d, start=0, end=1, probs=[np.where(np.asarray(q.actions) == "key", 0.9, 0.1 / (len(q.actions) - 1))
                                                       for q in d.questions]) for d in guidance.hindsight]
    records = build_subgoal_feedback(rollout, torch.zeros(1, 1), "advantage", 0.99, lambda q: q.description + q.question)
    moved = {}
    for record, target in zip(records.values(), improvement_targets(list(records.values()))):
        q = record.situation
        if meaning(q)[:2] == (NEXT, "kind"):
            right = q.actions[int(np.argmax(record.signal))]
            moved[q.question.startswith("You carry a"), right] = target[q.actions.index(right)] - record.policy[q.actions.index(right)]
    assert set(moved) == {(False, "key"), (True, "door")} and moved[True, "door"] > 0.05 and moved[False, "key"] > 0


def test_an_episode_that_fails_or_a_student_that_rarely_succeeds_judges_no_step():
    assert not _step_records(_unlock_local_driven_by_the_bot(0.0, 12)[0])  # (the episode goes on: nothing ended)
    guidance, _, _, succeeded = _unlock_local_driven_by_the_bot(0.1, 200)
    assert succeeded and not _step_records(guidance)  # one success in the last 100 episodes is under the floor


def _answer(q, colour: str, kind: str) -> np.ndarray:
    """A sure teacher: the verb "pick", every role's object the grey box, the step's `colour kind`."""
    role, asks, _ = meaning(q)
    word = "pick" if role == "verb" else (colour if asks == "colour" else kind) if role == NEXT else \
        "grey" if asks == "colour" else "box"
    return np.where(np.asarray(q.actions) == word, 1.0, 0.01) / (1 + 0.01 * (len(q.actions) - 1))


def test_full_hands_and_the_next_object_out_of_view_read_as_a_drop():
    """On the way to where it drops the key, the agent turns from the box the step names: the step
    stays a drop (it was explore, and the agent turned back and forth between the two). The key in
    hand is never explored for: named, it leaves the choice to what is in view."""
    actions = task_actions("BabyAI-UnlockPickup-v0")
    image = view(((3, 6), "key", "red", "open"), ((3, 2), "door", "red", "open"))
    questions = state_questions("pick up the grey box", image, actions, True)

    assert choose(questions, [_answer(q, "grey", "box") for q in questions], image, actions)[0] == Subgoal("drop")
    # the key in hand named again is no reason to drop it, nor a thing to look for
    elsewhere = view(((3, 6), "key", "red", "open"), ((3, 2), "door", "red", "closed"))
    questions = state_questions("pick up the grey box", elsewhere, actions, True)
    assert choose(questions, [_answer(q, "red", "key") for q in questions], elsewhere, actions)[0] == \
        Subgoal("open", (DOOR, RED))


@pytest.mark.parametrize("held, step", [("key", Subgoal(EXPLORE)), ("ball", Subgoal("drop"))])
def test_a_key_still_to_open_its_door_is_kept_while_the_mission_object_is_looked_for(held, step):
    """On the way to its locked door out of view, the key in hand was dropped for the box the
    step named (the bot carries it on); anything else held is put down first."""
    actions = task_actions("BabyAI-UnlockPickup-v0")
    image = view(((3, 6), held, "red", "open"))
    questions = state_questions("pick up the grey box", image, actions, True)
    assert choose(questions, [_answer(q, "grey", "box") for q in questions], image, actions)[0] == step


@pytest.mark.parametrize("verb, step", [("pick", Subgoal("pick up", (BOX, GREY))), ("go", Subgoal("go to", (DOOR, RED)))])
def test_an_open_door_is_no_step_unless_the_mission_goes_somewhere(verb, step):
    """Named with the box in view, the open door leaves the choice to the box (the bot takes it)."""
    actions = task_actions("BabyAI-UnlockPickup-v0")
    image = view(((3, 2), "door", "red", "open"), ((5, 4), "box", "grey", "open"))
    questions = state_questions("pick up the grey box", image, actions, True)
    # the open door likelier than the box, both likelier than any name out of view
    leaning = {"verb": {verb: 1.0}, "colour": {"red": 0.55, "grey": 0.45}, "kind": {"door": 0.55, "box": 0.45}}

    def answer(q) -> np.ndarray:
        role, asks, _ = meaning(q)
        if role not in ("verb", NEXT):
            return _answer(q, "grey", "box")
        said = leaning["verb" if role == "verb" else asks]
        return np.array([said.get(a, 1e-4) for a in q.actions])

    assert choose(questions, [answer(q) for q in questions], image, actions)[0] == step


def test_full_hands_and_the_missing_key_of_a_locked_door_in_view_read_as_a_drop():
    """The ball moved from the door in hand, the locked door's key not in view: the key named is
    taken after a drop (it was explore, and the agent searched on with the ball in hand); so is
    any other name out of view that is picked up, as the bot drops the ball it moved first."""
    actions = task_actions("BabyAI-BlockedUnlockPickup-v0")
    image = view(((3, 6), "ball", "green", "open"), ((3, 2), "door", "red", "locked"))
    questions = state_questions("pick up the grey box", image, actions, True)

    assert choose(questions, [_answer(q, "red", "key") for q in questions], image, actions)[0] == Subgoal("drop")
    assert choose(questions, [_answer(q, "blue", "key") for q in questions], image, actions)[0] == Subgoal("drop")
    # a name out of view that is not picked up is looked for, with the hands as they are
    assert choose(questions, [_answer(q, "blue", "door") for q in questions], image, actions)[0] == Subgoal(EXPLORE)


def test_a_key_that_has_opened_its_door_is_dropped_whatever_is_named():
    """Its door open in view, or opened earlier in the episode (out of view now): the bot drops it
    there, and the step said go to the open door or explore."""
    actions = task_actions("BabyAI-KeyCorridorS3R1-v0")
    at_the_door = view(((3, 6), "key", "red", "open"), ((3, 2), "door", "red", "open"))
    turned_away = view(((3, 6), "key", "red", "open"))
    opened = frozenset({Subgoal("open", (DOOR, RED))})
    for image, done in ((at_the_door, frozenset()), (turned_away, opened)):
        questions = state_questions("pick up the grey ball", image, actions, True)
        for named in (("red", "door"), ("blue", "ball")):
            answers = [_answer(q, *named) for q in questions]
            assert choose(questions, answers, image, actions, so_far=EpisodeSoFar(done=done))[0] == Subgoal("drop")
    # dropped beside its open door, it is no step: named, the box out of view is looked for
    dropped = view(((3, 2), "door", "red", "open"), ((2, 5), "key", "red", "open"))
    questions = state_questions("pick up the grey ball", dropped, actions, True)
    assert choose(questions, [_answer(q, "red", "key") for q in questions], dropped, actions)[0] == Subgoal(EXPLORE)
    # before its door opened, the key in hand goes on to it (out of view: explore)
    questions = state_questions("pick up the grey ball", turned_away, actions, True)
    assert choose(questions, [_answer(q, "red", "door") for q in questions], turned_away, actions)[0] == \
        Subgoal(EXPLORE)


@pytest.mark.parametrize("floor, judges", [(0.0, True), (0.1, False)])
def test_decisions_judge_the_step_only_while_the_student_succeeds_often(floor, judges):
    """A student under the floor (no success yet) judges none of the step's clozes by its decisions:
    the update holds every one of them where it stands (a record with no answer counted), those of
    the names the choice did not take too, which would otherwise follow the mission's feedback."""
    guidance = _unlock_local_driven_by_the_bot(floor, 12)[0]
    step_answers = [a for d in guidance.decisions for q, a in zip(d.questions, d.answers) if meaning(q)[0] == NEXT]
    assert step_answers and any(a >= 0 for a in step_answers) == judges
    assert judges or all(a == HELD for a in step_answers)


def test_a_key_in_hand_goes_to_its_locked_door_before_anything_else_is_taken():
    """Named with the key of a locked door in view in hand, the ball before that door was taken
    (a drop of the key) where the bot walks on to the door; only in the way, ahead, is it moved
    first, as the bot drops the key to move it."""
    actions = task_actions("BabyAI-BlockedUnlockPickup-v0")
    on_the_way = view(((3, 6), "key", "red", "open"), ((3, 1), "door", "red", "locked"), ((3, 2), "ball", "blue", "open"))
    in_the_way = view(((3, 6), "key", "red", "open"), ((3, 3), "door", "red", "locked"), ((3, 5), "ball", "blue", "open"))
    for image, step in ((on_the_way, Subgoal("open", (DOOR, RED))), (in_the_way, Subgoal("drop"))):
        questions = state_questions("pick up the grey box", image, actions, True)
        assert choose(questions, [_answer(q, "blue", "ball") for q in questions], image, actions)[0] == step
    # its door out of view, the key is carried on to look for it; once the door is open, the ball may be taken
    away = view(((3, 6), "key", "red", "open"), ((3, 2), "ball", "blue", "open"))
    questions = state_questions("pick up the grey box", away, actions, True)
    for done, step in ((frozenset(), Subgoal(EXPLORE)), (frozenset({Subgoal("open", (DOOR, RED))}), Subgoal("drop"))):
        answers = [_answer(q, "blue", "ball") for q in questions]
        assert choose(questions, answers, away, actions, so_far=EpisodeSoFar(done=done))[0] == step


def test_with_empty_hands_a_locked_doors_key_comes_before_other_things_unless_put_down_for_them():
    """The bot takes the key first; having put it down before its door to free the hands, it moves
    the thing in the way first, whichever of the two is named."""
    actions = task_actions("BabyAI-BlockedUnlockPickup-v0")
    image = view(((3, 1), "door", "red", "locked"), ((3, 2), "ball", "blue", "open"), ((2, 5), "key", "red", "open"))
    questions = state_questions("pick up the grey box", image, actions, True)
    red_key, blue_ball = (OBJECT_TO_IDX["key"], RED), (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["blue"])
    for named, put_down, step in ((("blue", "ball"), frozenset(), Subgoal("pick up", red_key)),
                                  (("red", "key"), frozenset({red_key}), Subgoal("pick up", blue_ball))):
        answers = [_answer(q, *named) for q in questions]
        assert choose(questions, answers, image, actions, so_far=EpisodeSoFar(put_down=put_down))[0] == step


def test_a_thing_moved_in_the_episode_is_no_step():
    """The ball put down away from the door, its door open: named, the box in view is taken (the
    bot never takes the moved ball again)."""
    actions = task_actions("BabyAI-BlockedUnlockPickup-v0")
    image = view(((3, 1), "door", "red", "open"), ((1, 4), "ball", "blue", "open"), ((3, 0), "box", "grey", "open"))
    questions = state_questions("pick up the grey box", image, actions, True)
    blue_ball, grey_box = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["blue"]), (OBJECT_TO_IDX["box"], GREY)
    # the ball likelier than the box, both likelier than any name out of view
    leaning = {"colour": {"blue": 0.55, "grey": 0.45}, "kind": {"ball": 0.55, "box": 0.45}}
    answers = [np.array([leaning[meaning(q)[1]].get(a, 1e-4) for a in q.actions]) if meaning(q)[0] == NEXT
               else _answer(q, "grey", "box") for q in questions]
    for moved, step in ((frozenset(), Subgoal("pick up", blue_ball)), (frozenset({blue_ball}), Subgoal("pick up", grey_box))):
        assert choose(questions, answers, image, actions, so_far=EpisodeSoFar(moved=moved))[0] == step


def test_a_door_seen_locked_is_remembered_and_its_key_comes_first_once_the_door_is_out_of_view():
    """The bot, hands empty, takes the key of a door it saw locked before the other thing in view,
    also once the door is out of view; a door never seen leaves the order to the teacher."""
    actions = task_actions("BabyAI-BlockedUnlockPickup-v0")
    red_key, blue_ball = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["red"]), (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["blue"])
    at_the_door = view(((3, 1), "door", "red", "locked"))
    turned_away = view(((3, 4), "ball", "blue", "open"), ((2, 5), "key", "red", "open"))
    parts = PartsDone()
    parts.see(np.stack([at_the_door, turned_away]), [False, False])
    parts.see(np.stack([turned_away, turned_away]), [False, False])
    assert parts.of(0).locked == frozenset({(DOOR, RED)}) and parts.of(1).locked == frozenset()
    questions = state_questions("pick up the grey box", turned_away, actions, True)
    probs = [_answer(q, "blue", "ball") for q in questions]
    assert choose(questions, probs, turned_away, actions, so_far=parts.of(0))[0] == Subgoal("pick up", red_key)
    assert choose(questions, probs, turned_away, actions, so_far=parts.of(1))[0] == Subgoal("pick up", blue_ball)
    parts.see(np.stack([turned_away, turned_away]), [True, False])
    assert parts.of(0).locked == frozenset()


def test_a_thing_met_ahead_with_the_key_in_hand_stays_in_the_way_once_the_agent_turns_to_drop_the_key():
    """The bot, its key in hand, drops the key once the ball in the way has been ahead, also after
    it turns to a free cell; before it met the ball, it walks on to the door."""
    actions = task_actions("BabyAI-BlockedUnlockPickup-v0")
    met_it = view(((3, 6), "key", "red", "open"), ((3, 3), "door", "red", "locked"), ((3, 5), "ball", "blue", "open"))
    turned = view(((3, 6), "key", "red", "open"), ((1, 3), "door", "red", "locked"), ((2, 6), "ball", "blue", "open"))
    parts = PartsDone()
    parts.see(np.stack([met_it, turned]), [False, False])
    parts.see(np.stack([turned, turned]), [False, False])
    blue_ball = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["blue"])
    assert parts.of(0).met == frozenset({blue_ball}) and parts.of(1).met == frozenset()
    questions = state_questions("pick up the grey box", turned, actions, True)
    answers = [_answer(q, "blue", "ball") for q in questions]
    assert choose(questions, answers, turned, actions, so_far=parts.of(0))[0] == Subgoal("drop")
    assert choose(questions, answers, turned, actions, so_far=parts.of(1))[0] == Subgoal("open", (DOOR, RED))
    emptied = view(((2, 6), "ball", "blue", "open"), ((3, 5), "key", "red", "open"))
    parts.see(np.stack([emptied, turned]), [False, False])
    assert parts.of(0).met == frozenset()

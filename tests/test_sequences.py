"""Missions of several parts: a part done in the episode leaves the choice, so the next is current."""

import numpy as np
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.envs.babyai.core.verifier import AfterInstr, BeforeInstr

from mutualrl.config import GuidanceConfig
from mutualrl.envs import make_env, task_actions
from mutualrl.evaluation import evaluate_subgoals
from mutualrl.grounding import meaning, mission_questions
from mutualrl.sequences import PartsDone
from mutualrl.steps import EpisodeSoFar, choose
from mutualrl.subgoal_guidance import SubgoalGuidance
from mutualrl.subgoals import EXPLORE, Subgoal
from mutualrl.teachers import Advice, Teacher
from driving import driven_by_the_bot
from views import view

DOOR = OBJECT_TO_IDX["door"]
RED_DOOR, BLUE_DOOR = (DOOR, COLOR_TO_IDX["red"]), (DOOR, COLOR_TO_IDX["blue"])
LEVEL = "BabyAI-OpenDoorsOrderN2-v0"


def _parts_in_order(env) -> list[str]:
    """The colours of the doors a mission of `OpenDoorsOrder` opens, first part first."""
    instr = env.instrs
    if isinstance(instr, BeforeInstr):
        return [instr.instr_a.desc.color, instr.instr_b.desc.color]
    if isinstance(instr, AfterInstr):
        return [instr.instr_b.desc.color, instr.instr_a.desc.color]
    return [instr.desc.color]


def _answer(cloze, parts: list[str], shares: tuple[float, float] = (0.6, 0.3)) -> np.ndarray:
    """A cloze of an `open` mission answered with its parts' colours in order (the first `shares[0]`,
    the second `shares[1]`), the verb `open`, the kind a door."""
    weights = np.full(len(cloze.actions), 0.01)
    role, asks, _ = meaning(cloze)
    if role == "channel":  # the mission as likely after every verb's usual words
        return np.ones(1)
    if role == "verb":
        weights[cloze.actions.index("open")] = 1.0
    elif asks == "colour":
        for colour, w in zip(parts, shares):
            weights[cloze.actions.index(colour)] = w
    else:
        weights[cloze.actions.index("door")] = 1.0
    return weights / weights.sum()


class ReadsTheOrder(Teacher):
    """Answers a mission's clozes as a teacher that reads which part comes first would. It reads
    the live level's instruction: the choice made from its answers is under test."""

    def advise(self, situations, envs=None):
        return [Advice(probs=_answer(s, _parts_in_order(env))) for s, env in zip(situations, envs)]


def test_a_part_done_leaves_the_choice_and_the_missions_clozes_are_then_judged_on_nothing():
    actions = task_actions(LEVEL)
    image = view(((3, 5), "door", "red", "open"), ((1, 2), "door", "blue", "closed"))
    questions = mission_questions("open the red door, then open the blue door", actions)
    probs = [_answer(q, ["red", "blue"]) for q in questions]
    first, answers = choose(questions, probs, image, actions)
    assert first == Subgoal("open", RED_DOOR) and any(a >= 0 for a in answers)
    second, answers = choose(questions, probs, image, actions, so_far=EpisodeSoFar(done=frozenset({first})))
    assert second == Subgoal("open", BLUE_DOOR)
    assert all(a < 0 for a in answers)  # the same clozes now stand for the second part


def test_a_part_done_and_out_of_view_is_not_looked_for():
    """The first part read far more surely than the second: once its door is opened and left
    behind, the second door in view is chosen, not exploring for the first."""
    actions = task_actions(LEVEL)
    image = view(((1, 2), "door", "blue", "closed"))
    questions = mission_questions("open the red door, then open the blue door", actions)
    probs = [_answer(q, ["red", "blue"], (0.8, 0.1)) for q in questions]
    done = frozenset({Subgoal("open", RED_DOOR)})
    assert choose(questions, probs, image, actions, so_far=EpisodeSoFar(done=done))[0] == Subgoal("open", BLUE_DOOR)
    assert choose(questions, probs, image, actions)[0] == Subgoal(EXPLORE)  # (not yet done, the red door is looked for)


def test_a_part_is_done_once_completed_and_only_for_the_rest_of_its_episode():
    parts = PartsDone()
    parts.name(0, Subgoal("open", RED_DOOR))
    parts.name(1, Subgoal("pick up", RED_DOOR))  # what is picked up may be needed again: never a part
    shut, opened = view(((3, 5), "door", "red", "closed")), view(((3, 5), "door", "red", "open"))
    parts.see(np.stack([shut, opened]), [False, False])
    assert parts.of(0).done == parts.of(1).done == frozenset()
    parts.see(np.stack([opened, opened]), [False, False])
    assert parts.of(0).done == frozenset({Subgoal("open", RED_DOOR)}) and parts.of(1).done == frozenset()
    parts.see(np.stack([opened, opened]), [True, False])
    assert parts.of(0).done == frozenset()


def test_a_door_opened_that_is_seen_shut_is_no_longer_done():
    """Another door of its colour (`KeyCorridorS3R1`: the locked one) or the same shut again."""
    parts = PartsDone()
    parts.name(0, Subgoal("open", RED_DOOR))
    parts.name(0, Subgoal("open", BLUE_DOOR))
    both = view(((3, 5), "door", "red", "open"), ((1, 1), "door", "blue", "open"))
    parts.see(np.stack([both]), [False])
    parts.see(np.stack([view(((3, 5), "door", "blue", "open"))]), [False])
    assert parts.of(0).done == frozenset({Subgoal("open", RED_DOOR), Subgoal("open", BLUE_DOOR)})
    parts.see(np.stack([view(((1, 2), "door", "red", "locked"))]), [False])
    assert parts.of(0).done == frozenset({Subgoal("open", BLUE_DOOR)})


def test_read_in_the_right_order_every_mission_of_two_parts_is_carried_out():
    """Without the parts done, the first door is named again once open, and only the missions of
    one part succeed."""
    result = evaluate_subgoals(ReadsTheOrder(), LEVEL, 9, 0)
    assert result.success_rate == 1.0 and result.subgoal_accuracy > 0.9


def test_in_training_a_part_done_is_never_held_again_and_later_decisions_judge_no_mission_cloze():
    """Driven by the bot through missions of two parts: once the part the teacher named is done
    (the bot may do the other first, which is then no part done), no later decision holds it again
    or judges the mission's clozes."""
    envs, checked, judged_later = make_env(LEVEL, 1, seed=0), 0, 0
    for seed in range(12):
        obs, _ = envs.reset(seed=seed)
        if len(_parts_in_order(envs.envs[0].unwrapped)) < 2:
            continue
        guidance = SubgoalGuidance(GuidanceConfig(), ReadsTheOrder(), np.random.default_rng(seed), torch.device("cpu"),
                                   1, task_actions(LEVEL))
        done_at, held = None, []
        for step, _, _, terminated in driven_by_the_bot(envs, obs, guidance, 300):
            if terminated:
                break
            if done_at is None and guidance.parts.of(0).done:
                done_at, part = step, next(iter(guidance.parts.of(0).done))
            if done_at is not None and guidance.held[0] is not None:
                held.append(guidance.held[0].subgoal)
        if done_at is None:
            continue
        checked += 1
        later = [d for d in guidance.decisions if d.start > done_at and d.questions]
        judged_later += len(later)
        assert all(a < 0 for d in later for a in d.answers)
        assert part not in held
    assert checked >= 2 and judged_later > 0


def test_a_key_put_down_before_its_door_opened_is_remembered_until_the_hands_take_something():
    """Put down beside its locked door (to move what blocks it), not once its door is open (served);
    forgotten once the hands hold anything again, and with the episode. Anything else put down was
    moved."""
    red_key = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["red"])
    holding = view(((3, 6), "key", "red", "open"), ((3, 1), "door", "red", "locked"), ((3, 2), "ball", "blue", "open"))
    put = view(((3, 5), "key", "red", "open"), ((3, 1), "door", "red", "locked"), ((3, 2), "ball", "blue", "open"))
    moving = view(((3, 6), "ball", "blue", "open"), ((3, 5), "key", "red", "open"), ((3, 1), "door", "red", "locked"))
    served = view(((3, 5), "key", "red", "open"), ((3, 1), "door", "red", "open"))
    parts = PartsDone()
    parts.see(np.stack([holding, holding]), [False, False])
    parts.see(np.stack([put, served]), [False, False])
    assert parts.of(0).put_down == frozenset({red_key}) and parts.of(1).put_down == frozenset()
    parts.see(np.stack([moving, served]), [False, False])
    assert parts.of(0).put_down == frozenset() and parts.of(0).moved == frozenset()
    parts.see(np.stack([put, served]), [False, False])  # the ball put down, out of the way
    assert parts.of(0).moved == frozenset({(OBJECT_TO_IDX["ball"], COLOR_TO_IDX["blue"])})
    parts.see(np.stack([holding, holding]), [False, False])
    parts.see(np.stack([put, put]), [True, False])
    assert parts.of(0).put_down == frozenset() and parts.of(1).put_down == frozenset({red_key})


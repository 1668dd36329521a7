"""Held-out evaluation of the student (greedy, no advice) and of the teacher acting alone.

Evaluation seeds start at `EVAL_SEED_BASE`, far from the training seeds (seed + copy index).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from mutualrl.envs import FULL_ACTIONS, has_locked_doors, make_env, obs_to_tensors, situations, task_actions, unwrapped_envs
from mutualrl.facts import state_facts
from mutualrl.locations import pose_of
from mutualrl.student import Student
from mutualrl.steps import choose, state_questions
from mutualrl.expert import SubgoalHands
from mutualrl.sequences import PartsDone
from mutualrl.subgoals import Subgoal
from mutualrl.teachers.base import Teacher
from mutualrl.teachers.bot import BotTeacher

EVAL_SEED_BASE = 1_000_000
_SAID_NO_EXPERT: set[str] = set()  # levels whose lack of an expert was already said


@dataclass
class EvalResult:
    episodes: int
    success_rate: float
    mean_return: float
    mean_length: float
    advice_accuracy: float | None = None
    #: advice accuracy per bot action, averaged: a teacher that always says "go forward" gets 1/3
    advice_accuracy_balanced: float | None = None
    per_action_accuracy: dict[str, float] = field(default_factory=dict)
    #: how often the teacher's subgoal was one the BabyAI bot's stack held, along the bot's episodes
    subgoal_accuracy: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != {}}


def run_episodes(
    env_id: str,
    episodes: int,
    seed: int,
    policy: Callable[[dict, list, list, np.ndarray], np.ndarray],
    num_envs: int = 8,
    with_expert: bool = False,
    actions: tuple[str, ...] | None = None,
) -> EvalResult:
    """Run exactly `episodes` episodes (a fixed quota per copy, so short ones are not favoured).

    `policy(obs, situations, envs, starts)` returns action indices into `actions` (default: the
    task's); `envs` are the live environments, for a privileged teacher, and `starts` is True where
    an episode begins at this step (a student with memory forgets there). With
    `with_expert`, on BabyAI levels, the BabyAI bot's action is recorded at every visited state to
    measure how often the policy agreed with it.
    """
    num_envs = max(1, min(num_envs, episodes))
    quota = [episodes // num_envs + (1 if i < episodes % num_envs else 0) for i in range(num_envs)]
    actions = actions or task_actions(env_id)
    envs = make_env(env_id, num_envs, EVAL_SEED_BASE + seed * 10_000)
    obs, _ = envs.reset(seed=EVAL_SEED_BASE + seed * 10_000)
    expert = BotTeacher() if with_expert and env_id.startswith("BabyAI-") else None  # the bot plans BabyAI missions only
    last: list[str | None] = [None] * num_envs
    starts = np.ones(num_envs, dtype=bool)
    done_count, returns, lengths, successes = [0] * num_envs, [], [], []
    running_return, running_length = np.zeros(num_envs), np.zeros(num_envs, dtype=int)
    agree: dict[str, list[bool]] = {}
    while any(d < q for d, q in zip(done_count, quota)):
        sits, live = situations(obs, actions, last), unwrapped_envs(envs)
        chosen = np.asarray(policy(obs, sits, live, starts))
        if expert is not None:
            for i, (want, pick) in enumerate(zip(expert.expert_actions(sits, live), chosen)):
                if done_count[i] < quota[i] and want in actions:  # agreement only where the task offers it
                    agree.setdefault(want, []).append(actions[pick] == want)
        obs, reward, terminated, truncated, _ = envs.step(chosen)
        running_return += reward
        running_length += 1
        starts = terminated | truncated
        for i in range(num_envs):
            last[i] = actions[chosen[i]]
            if terminated[i] or truncated[i]:
                if done_count[i] < quota[i]:
                    returns.append(running_return[i])
                    lengths.append(running_length[i])
                    successes.append(bool(terminated[i] and reward[i] > 0))
                    done_count[i] += 1
                running_return[i], running_length[i], last[i] = 0.0, 0, None
    envs.close()
    result = EvalResult(episodes=len(returns), success_rate=float(np.mean(successes)),
                        mean_return=float(np.mean(returns)), mean_length=float(np.mean(lengths)))
    if expert is not None:
        flat = [a for v in agree.values() for a in v]
        result.advice_accuracy = float(np.mean(flat)) if flat else float("nan")
        result.per_action_accuracy = {k: float(np.mean(v)) for k, v in sorted(agree.items())}
        result.advice_accuracy_balanced = float(np.mean(list(result.per_action_accuracy.values()))) if agree else float("nan")
    return result


def evaluate_student(model: Student, env_id: str, episodes: int, seed: int, device: str = "cpu",
                     actions: tuple[str, ...] | None = None) -> EvalResult:
    """The student alone: greedy actions, no action advice, its own subgoals (`Student.alone`)."""
    model.eval()
    memory = None

    def policy(obs, _sits, _envs, starts):
        nonlocal memory
        with torch.no_grad():
            logits, _, memory = model.alone(obs_to_tensors(obs, device), memory,
                                            torch.as_tensor(starts, dtype=torch.float32, device=device))
        return logits.argmax(-1).cpu().numpy()

    result = run_episodes(env_id, episodes, seed, policy, actions=actions)
    model.train()
    return result


def evaluate_teacher(teacher: Teacher, env_id: str, episodes: int, seed: int,
                     actions: tuple[str, ...] | None = None) -> EvalResult:
    """The teacher acting alone (its top action), with its agreement with the BabyAI bot."""

    def policy(_obs, sits, envs, _starts):
        return np.array([int(np.argmax(a.probs)) for a in teacher.advise(sits, envs=envs)])

    return run_episodes(env_id, episodes, seed, policy, with_expert=True, actions=actions)


def _subgoal_choices(teacher: Teacher, env_id: str, actions: tuple[str, ...], reword: Callable[[str], str] | None = None):
    """The teacher's most likely subgoal for each copy of a step (missions reworded by `reword`;
    on a level with locked doors, the next step asked too: `steps`; the parts of the mission done
    in the episode left out, `sequences`)."""
    steps, parts = has_locked_doors(env_id), PartsDone()

    def choices(obs, sits, envs, starts) -> list[Subgoal]:
        teacher.observe(envs, [s.last_action for s in sits])
        images = np.asarray(obs["image"])
        if teacher.names_subgoals:
            return [teacher.subgoal(env, image) for image, env in zip(images, envs)]
        parts.see(images, starts)
        chosen = []
        for i, (mission, image, env) in enumerate(zip(obs["mission"], images, envs)):
            questions = state_questions(reword(mission) if reword else mission, image, actions, steps)
            answers = teacher.advise(questions, envs=[env] * len(questions))
            pose = pose_of(env)
            parts.started(i, pose)
            chosen.append(choose(questions, [a.probs for a in answers], image, actions, so_far=parts.of(i),
                                 pose=pose)[0])
            parts.name(i, chosen[-1])
        return chosen

    return choices


def subgoal_agreement(teacher: Teacher, env_id: str, episodes: int, seed: int, actions: tuple[str, ...] | None = None,
                      reword: Callable[[str], str] | None = None, misses: Counter | None = None) -> float | None:
    """Along the BabyAI bot's own held-out episodes, how often the teacher's most likely subgoal
    is one the bot's stack holds at that state (`reword`: the teacher reads each mission so;
    `misses` counts each state where it is not, as (teacher's subgoal, bot's stack, the state's
    facts), where a change is to be sought). None, said once in a line, on a level without a
    BabyAI instruction: the bot cannot plan it."""
    if not env_id.startswith("BabyAI-"):
        if env_id not in _SAID_NO_EXPERT:
            _SAID_NO_EXPERT.add(env_id)
            logging.getLogger(__name__).info(f"{env_id}: no subgoal accuracy (the BabyAI bot, the expert it is "
                                             "measured against, needs a BabyAI instruction; this level has text only)")
        return None
    actions = actions or task_actions(env_id)
    expert, choices, agree = BotTeacher(), _subgoal_choices(teacher, env_id, actions, reword), []

    def follow_the_bot(obs, sits, envs, starts):
        want = expert.observe(envs, [s.last_action for s in sits])
        for subgoal, image, env in zip(choices(obs, sits, envs, starts), np.asarray(obs["image"]), envs):
            stack = expert.expert_subgoals(env, image)
            agree.append(subgoal in stack)
            if misses is not None and not agree[-1]:
                misses[(str(subgoal), " | ".join(map(str, stack)), state_facts(image))] += 1
        return np.array([FULL_ACTIONS.index(w) for w in want])

    run_episodes(env_id, episodes, seed, follow_the_bot, actions=FULL_ACTIONS)
    return float(np.mean(agree)) if agree else float("nan")


def evaluate_subgoals(teacher: Teacher, env_id: str, episodes: int, seed: int,
                      actions: tuple[str, ...] | None = None) -> EvalResult:
    """A subgoal teacher judged twice on the same held-out seeds: its `subgoal_accuracy` along
    the bot's episodes (`subgoal_agreement`); its success, return and length acting alone, its
    subgoals carried out by the bot's planner (`SubgoalHands`), which finds the way but never
    chooses what to do."""
    actions = actions or task_actions(env_id)
    hands, choices = SubgoalHands(), _subgoal_choices(teacher, env_id, actions)

    def act_alone(obs, sits, envs, starts):
        return np.array([FULL_ACTIONS.index(hands.act(env, subgoal, sit.last_action))
                         for subgoal, env, sit in zip(choices(obs, sits, envs, starts), envs, sits)])

    accuracy = subgoal_agreement(teacher, env_id, episodes, seed, actions)
    result = run_episodes(env_id, episodes, seed, act_alone, actions=FULL_ACTIONS)
    result.subgoal_accuracy = accuracy
    return result

"""LLM -> RL with subgoals: the teacher names an object and a verb, the student is shown its mask,
and each decision is judged in hindsight for the teacher's feedback (`feedback.build_subgoal_feedback`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from mutualrl.completion import RecentSuccess, verb_cloze, verb_verdicts
from mutualrl.config import GuidanceConfig
from mutualrl.envs import Situation
from mutualrl.choice import as_read
from mutualrl.verdicts import hindsight, judged, one_right
from mutualrl.guidance import Guidance
from mutualrl.locations import Pose, pose_of
from mutualrl.rollout import AdviceRecord, Rollout, SubgoalDecision
from mutualrl.sequences import PartsDone
from mutualrl.steps import Segments, choose, state_questions, step_hindsight
from mutualrl.subgoals import (SUBGOAL_DIM, Sightings, Subgoal, carried, cells_away, faces_open_door, front_object,
                               reached, subgoal_vector, visible_objects)
from mutualrl.teachers import Teacher


@dataclass
class _Held:
    """A subgoal a copy is pursuing, and the decision that chose it."""

    subgoal: Subgoal
    decision: SubgoalDecision
    shown: bool
    key: str
    objects: list = field(default_factory=list)  # what was in view when it was chosen (for explore)
    steps: int = 0


class SubgoalGuidance(Guidance):
    """Subgoals named by the teacher, held until reached, out of view, or `subgoal_steps` steps.

    A copy without a subgoal asks: the clozes about its mission (`grounding`), which a teacher
    answers once per version for every state; with no object in view it explores without asking. Answers the teacher holds at its version are free. Under a
    budget, the prompts it has not read wait for the start of the next rollout, where the
    budget is spent on the most wanted of them in one batch (cheaper than a few at a time);
    meanwhile the teacher's last answers stand (`Teacher.recall`), and a copy without any goes on
    alone. In training the subgoal is drawn from the teacher's distribution
    (`choice.choice_weights`), so the feedback sees its alternatives too. Where the subgoal is
    shown (`advice_prob` per decision, if the mode `shows` advice) the student's input is its mask
    and verb, elsewhere its own grounding, which learns from every subgoal the teacher names
    (`loss_weight`); trust, from the returns under shown against unshown subgoals, is measured
    and reported."""

    def __init__(self, config: GuidanceConfig, teacher: Teacher, rng: np.random.Generator, device: torch.device,
                 num_envs: int, actions: tuple[str, ...], shows: bool = True, steps: bool = False):
        self.actions, self.asks_steps = actions, steps  # ask the next step too (`steps`): a level with locked doors
        self.held: list[_Held | None] = [None] * num_envs
        self._paid: list[set[Subgoal]] = [set() for _ in range(num_envs)]  # subgoals rewarded this episode
        self._nearest: list[dict[Subgoal, int]] = [{} for _ in range(num_envs)]  # closest approach this episode
        self._before: tuple[np.ndarray, Sequence[str]] | None = None  # this step's views and missions
        # unread prompts, keyed as the teacher keeps their answers (a prompt may be asked both as
        # taught and as untaught: `Design.unshift`) -> (priority, prompt)
        self._asked: dict[tuple[bool, str], tuple[float, Situation]] = {}
        self._sightings = [Sightings() for _ in range(num_envs)]  # where each copy saw each object
        self._recent = RecentSuccess()  # whether successes are frequent enough to judge the verb and the step
        self.parts = PartsDone()  # the parts of each copy's mission done in its episode
        self.segments = Segments(num_envs)  # each copy's states since it last dealt with an object (`steps`)
        super().__init__(config, teacher, rng, device, shows)

    def start_rollout(self) -> None:
        """Spend the budget on the prompts asked for (without a budget: read the clozes of every
        copy's mission that the teacher's version has not answered, in one batch, cheaper than a
        few at each step after an update); held subgoals go on into the new rollout as new
        decisions from its first step."""
        super().start_rollout()
        self._read_asked()
        if not self.config.budget and self._before is not None:
            unread = list(dict.fromkeys(q for image, m in zip(*self._before)
                                        for q in state_questions(m, image, self.actions, self.asks_steps)
                                        if not self.teacher.knows(q)))
            if unread:
                self.teacher.advise(unread)
                self.reads += len(unread)
        self.decisions, self.hindsight = [], []
        for h in self.held:
            if h is not None:
                h.decision = h.decision.continued()
                self.decisions.append(h.decision)

    def _read_asked(self) -> None:
        """One teacher call for the most wanted prompts of those the last rollout asked for."""
        if not self._asked:  # (only a budget defers prompts)
            return
        wanted = sorted(self._asked.values(), key=lambda entry: -entry[0])
        unread = [s for _, s in wanted if not self.teacher.knows(s)][: self.config.budget]
        self._asked.clear()
        if unread:
            self.teacher.advise(unread)
            self.reads += len(unread)
            self.reads_left -= len(unread)

    def advise(self, obs: dict[str, Any], envs: Sequence[Any], step: int, entropy: np.ndarray) -> AdviceRecord:
        """Choose subgoals for the copies without one, from the answers at hand (all of them, in
        one teacher call, without a budget); the step's input for every copy."""
        images, missions, poses = np.asarray(obs["image"]), obs["mission"], [pose_of(env) for env in envs]
        self._before = images, missions
        for i, (sightings, image, env) in enumerate(zip(self._sightings, images, envs)):
            sightings.see(image, env.agent_pos, env.agent_dir)
            self.parts.started(i, poses[i])
            if self.asks_steps:
                self.segments.see(i, image)
        need = [i for i, h in enumerate(self.held) if h is None]
        if self.teacher.names_subgoals:  # its step, read again at every step; a new one replaces the held one
            for i, (held, env) in enumerate(zip(self.held, envs)):
                subgoal = self.teacher.subgoal(env, images[i])
                if held is None or held.subgoal != subgoal:
                    if held is not None:
                        held.decision.end = step
                    self._hold_named(i, step, missions[i], images[i], subgoal)
            return self._record(images, envs)
        # (nothing in view: explore without asking, but for the next step of full hands, which may be a drop)
        candidates = {i: list(state_questions(missions[i], images[i], self.actions, self.asks_steps))
                      if visible_objects(images[i]) or (self.asks_steps and carried(images[i]) is not None) else []
                      for i in need}
        now, later, unread = [], [], {}
        for i in need:
            questions = candidates[i]
            keys = [self.teacher.key(q) for q in questions]
            priority = self._priority(keys, entropy[i])
            kept = [((q.untaught, k), q) for k, q in zip(keys, questions)]
            new = {key: q for key, q in kept if not self.teacher.knows(q)}
            if self.config.budget and new:
                later.append(i)
                for key, q in kept:  # all of them: an update may come before the read
                    if priority > self._asked.get(key, (-math.inf,))[0]:
                        self._asked[key] = (priority, q)
            else:
                now.append(i)
                unread.update(new)
        self.reads += len(unread)  # (without a budget, read at once)
        flat = [(i, q) for i in now for q in candidates[i]]
        answers = self.teacher.advise([q for _, q in flat], envs=[envs[i] for i, _ in flat]) if flat else []
        by_env: dict[int, list] = {i: [] for i in now}
        for (i, _), a in zip(flat, answers):
            by_env[i].append(a)
        for i in later:  # until the teacher reads them, its last answers stand
            by_env[i] = self.teacher.recall(candidates[i])
        for i in need:
            if all(a is not None and a.available for a in by_env[i]):
                stale = i in later
                self.stale += stale
                self._hold(i, step, candidates[i], [a.probs for a in by_env[i]], missions[i], images[i], stale=stale,
                           pose=poses[i])
        return self._record(images, envs)

    def _hold(self, i: int, step: int, questions: list[Situation], probs: list[np.ndarray], mission: str,
              image: np.ndarray, stale: bool, pose: Pose) -> None:
        subgoal, answers = choose(questions, probs, image, self.actions, self.rng, self.parts.of(i), pose)
        decision = SubgoalDecision(env=i, start=step, questions=questions, probs=probs, stale=stale,
                                   answers=judged(questions, answers, self._frequent))
        self._hold_named(i, step, mission, image, subgoal, decision)

    def _hold_named(self, i: int, step: int, mission: str, image: np.ndarray, subgoal: Subgoal,
                    decision: SubgoalDecision | None = None) -> None:
        """Copy i pursues `subgoal` from this step (a privileged teacher's has no clozes behind it)."""
        decision = decision or SubgoalDecision(env=i, start=step, questions=[], answers=[], probs=[])
        self.decisions.append(decision)
        self.parts.name(i, subgoal)
        shown = self.shows and bool(self.rng.random() < self.config.advice_prob)
        self.held[i] = _Held(subgoal, decision, shown, f"{subgoal}|{mission}", visible_objects(image))

    def _record(self, images: np.ndarray, envs: Sequence[Any]) -> AdviceRecord:
        n, dev = len(self.held), self.device
        vectors, available, gate, trust = np.zeros((n, SUBGOAL_DIM), np.float32), np.zeros(n), np.zeros(n), np.zeros(n)
        for i, h in enumerate(self.held):
            if h is None:
                continue
            toward = self._sightings[i].toward(h.subgoal.obj, envs[i].agent_pos, envs[i].agent_dir)
            vectors[i] = subgoal_vector(images[i], h.subgoal, toward)
            available[i], trust[i] = 1.0, self.trust.trust(h.key)
            gate[i] = float(h.shown)
        self.steps, self.advised = self.steps + n, self.advised + int(available.sum())
        as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=dev)  # noqa: E731
        probs = as_tensor(vectors)
        return AdviceRecord(probs=probs, available=as_tensor(available), shown=probs, gate=as_tensor(gate),
                            logits=torch.zeros(n, len(self.actions), device=dev), trust=as_tensor(trust))

    def loss_weight(self, rollout: Rollout, frames: int) -> torch.Tensor:
        """Per-step weight lambda of the student's grounding towards the teacher's subgoals, whatever
        the trust: that grounding is only an input, which PPO learns to use as far as it pays
        (measured: gated by a trust that stayed ~0, the grounding never learnt and the student
        alone gained nothing from even the bot's subgoals)."""
        return rollout.advice.available * self.config.lambda_at(frames)

    def keys(self) -> list[str]:
        """Each copy's trust key at this step ('' without a subgoal)."""
        return [h.key if h is not None else "" for h in self.held]

    def after_step(self, obs: dict[str, Any], done: np.ndarray, success: np.ndarray, final: dict[str, Any],
                   step: int) -> np.ndarray:
        """End the subgoals this step finished (reached, out of view, timed out, episode over);
        note what the student itself went to or picked up (`hindsight`); returns the shaped reward
        for the object subgoals reached (`subgoal_reward`) and approached (`subgoal_progress`), both
        0 by default. Neither can be farmed: reaching is paid once per subgoal and episode (facing
        the same object again pays nothing), approaching once per step of the view's grid nearer
        than the episode's closest so far (turning away and back pays nothing); explore is never
        paid, since a student could reach it by turning on the spot (measured: success fell from
        0.58 to 0.12).

        `final` is the vector env's step info: the last view of an episode that ended lies in
        `final_obs`, as the new episode's first view is already in `obs`."""
        images = np.asarray(obs["image"]).copy()
        for i in np.flatnonzero(done):
            images[i] = final["final_obs"][i]["image"]
            self._sightings[i].clear()
        self._recent.add(success[done])
        self._note_hindsight(images, step, success)
        for i in np.flatnonzero(done):
            self._judge_steps(i, bool(success[i]), step)
        bonus = np.zeros(len(self.held), dtype=np.float32)
        for i, h in enumerate(self.held):
            if h is None:
                continue
            h.steps += 1
            got = bool(success[i]) or reached(h.subgoal, images[i], h.objects)
            # a text teacher names what is in view; a privileged one may name what was seen before
            lost = not self.teacher.names_subgoals and h.subgoal.obj is not None and \
                h.subgoal.obj not in visible_objects(images[i])
            if h.subgoal.obj is not None and self.config.subgoal_progress:
                bonus[i] += self.config.subgoal_progress * self._approach(i, h.subgoal, images[i], got, bool(success[i]))
            if got or lost or done[i] or h.steps >= self.config.subgoal_steps:
                h.decision.end, h.decision.reached = step + 1, got
                if got and h.subgoal.obj is not None and h.subgoal not in self._paid[i]:
                    bonus[i] += self.config.subgoal_reward
                    self._paid[i].add(h.subgoal)
                self.held[i] = None
        self.parts.see(images, done)
        for i in np.flatnonzero(done):
            self._paid[i].clear()
            self._nearest[i].clear()
        self.shaped += float(bonus.sum())
        return bonus

    def _approach(self, i: int, subgoal: Subgoal, image: np.ndarray, got: bool, success: bool) -> int:
        """How many steps nearer the subgoal's object copy i now is than ever before in its episode
        (a subgoal reached is at 0, but for put next to, which dropping anywhere ends, only success)."""
        best = self._nearest[i].get(subgoal)
        if best is None:  # not yet seen in this episode: as far as it was before the step
            best = cells_away(self._before[0][i], subgoal.obj)
        now = 0 if success or (got and subgoal.verb != "put next to") else cells_away(image, subgoal.obj)
        seen = [d for d in (best, now) if d is not None]
        if seen:
            self._nearest[i][subgoal] = min(seen)
        return best - now if best is not None and now is not None and now < best else 0

    def _note_hindsight(self, after: np.ndarray, step: int, success: np.ndarray) -> None:
        """Where a step brought the student to an object (now facing it; now carrying it), the
        mission's clozes are judged on the answers the student's own act amounts to, whatever the
        teacher said: hindsight feedback from the student's experience, so the teacher learns even
        while the student does not yet follow it. On a level with locked doors, an object picked up
        or a door opened is noted as the next step of the states since the last such act
        (`steps.Segments`, judged where the episode succeeds: `_judge_steps`). With `verb_judged:
        at-success`, a success judges the verb cloze by the act that completed the mission
        (`completion`), while successes are frequent (`verb_success_floor`)."""
        before, missions = self._before
        judges = self.config.verb_judged == "at-success" and self._frequent
        for i in range(len(after)):
            judged_now = bool(success[i]) and judges
            cloze, verdicts = verb_verdicts(missions[i], self.actions, before[i], after[i], judged_now)
            if verdicts:
                self.hindsight += self._verdict_records(i, step, cloze, self._said([cloze])[0], verdicts)
            holding = carried(after[i])
            picked = holding if holding is not None and carried(before[i]) is None else None
            if self.asks_steps:
                door = front_object(after[i])
                opened = door if faces_open_door(after[i]) and not faces_open_door(before[i]) and \
                    front_object(before[i]) == door else None
                if (dealt := picked or opened) is not None:
                    self.segments.dealt(i, dealt, picked=picked is not None)
                elif holding is None and carried(before[i]) is not None:
                    self.segments.dropped(i)
            if picked is not None:
                obj, verb = picked, "pick up"
            elif (obj := front_object(after[i])) is not None and front_object(before[i]) != obj:
                verb = "go to"
            else:
                continue
            questions, answers = hindsight(missions[i], self.actions, obj, verb, carried(before[i]),
                                           self._verb_reading(missions[i]))
            if questions:
                probs = self._said(questions)
                answers = as_read(questions, answers, probs, obj)
                self.hindsight.append(SubgoalDecision(env=i, start=step, questions=questions, answers=answers,
                                                      probs=probs, end=step + 1, reached=True))

    @property
    def _frequent(self) -> bool:
        """Whether the student succeeds often enough for its successes and decisions to judge the
        verb and the step (`verb_success_floor` of its last training episodes)."""
        return self._recent.rate >= self.config.verb_success_floor

    def _judge_steps(self, i: int, success: bool, step: int) -> None:
        """Copy i's episode ended. Where it succeeded (while successes are frequent, as the verb's
        verdicts), the object the student dealt with next from each of its states is right there:
        the step's clozes of each distinct state get the verdict 1 on it and 0 on every other answer
        (`verdicts.one_right`; with the advantages of the teacher's own decisions there,
        `feedback.build_subgoal_feedback`). Measured on `UnlockLocal`: judged by the advantages
        alone, the key beside its locked door differed from the door by 0.01-0.06 (the signal's
        spread 0.04-0.06), and the teacher still named the door there after 122,880 frames."""
        states = self.segments.ended(i)
        if not success or not self._frequent:  # (as the decisions, `judged`)
            return
        mission = self._before[1][i]
        for image, obj in states:
            questions, answers = step_hindsight(mission, image, obj)
            probs = self._said(questions)
            for q, answer, said in zip(questions, as_read(questions, answers, probs, obj), probs):
                self.hindsight += self._verdict_records(i, step, q, said, one_right(q, answer))

    @staticmethod
    def _verdict_records(i: int, step: int, cloze: Situation, said: np.ndarray,
                         verdicts: list[tuple[int, float]]) -> list[SubgoalDecision]:
        """One hindsight record per judged answer of copy i's cloze, each with its fixed verdict."""
        return [SubgoalDecision(env=i, start=step, questions=[cloze], answers=[answer], probs=[said], end=step + 1,
                                reached=True, verdict=value) for answer, value in verdicts]

    def _said(self, questions: list[Situation]) -> list[np.ndarray]:
        """The teacher's last answers to these clozes (uniform where not read): the update improves
        on the teacher's own answers."""
        return [a.probs if a is not None else np.full(len(q.actions), 1.0 / len(q.actions))
                for a, q in zip(self.teacher.recall(questions), questions)]

    def _verb_reading(self, mission: str) -> np.ndarray | None:
        """The teacher's last answer to the mission's verb cloze (None where there is no choice of
        verb, or it has not been read)."""
        cloze = verb_cloze(mission, self.actions)
        said = self.teacher.recall([cloze]) if cloze is not None else [None]
        return None if said[0] is None else said[0].probs

    def update(self, rollout: Rollout, advantages: torch.Tensor, frames: int) -> dict[str, float]:
        """Trust evidence, from a randomised comparison: whether a subgoal is shown is drawn per
        decision (`advice_prob`), so the returns of the steps under shown subgoals against those
        under unshown ones say what showing the teacher's subgoal is worth. (Advantages would not:
        the critic sees the subgoal, so they average zero either way. Nor would "reached or not":
        reaching the target is success whoever named it.)"""
        keys = np.asarray(rollout.keys, dtype=object)
        judged = (rollout.advice.available > 0).cpu().numpy() & (keys != "")
        if judged.any() and self.shows:
            shown = (rollout.advice.gate > 0).cpu().numpy()
            returns = (advantages + rollout.values).cpu().numpy()
            self.trust.update(list(keys[judged]), shown[judged], returns[judged])
        steps, envs = advantages.shape
        finished = [d for d in rollout.decisions if d.end is not None]
        row = {"lambda": self.config.lambda_at(frames), "trust": float(rollout.advice.trust.mean()),
               "subgoals_reached_rate": float(np.mean([d.reached for d in finished])) if finished else 0.0,
               "subgoals_per_1024_frames": len(rollout.decisions) * 1024 / (steps * envs)}
        if self.config.subgoal_reward or self.config.subgoal_progress:  # (episode returns exclude it)
            row["shaped_reward_per_1024_frames"] = self.shaped * 1024 / (steps * envs)
        if self.config.verb_judged == "at-success":
            judged_verbs = {(d.env, d.start) for d in rollout.hindsight or () if d.verdict is not None}
            row["verbs_judged_per_1024_frames"] = len(judged_verbs) * 1024 / (steps * envs)
        return row

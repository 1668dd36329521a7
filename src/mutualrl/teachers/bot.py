"""The BabyAI bot as a teacher of actions or of subgoals: the expert for advice and subgoal
accuracy, an upper bound, a fast test teacher."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_OBJECT, OBJECT_TO_IDX
from minigrid.utils.baby_ai_bot import DisappearedBoxError

from mutualrl.envs import FULL_ACTIONS, Situation
from mutualrl.grounding import COLOURS, KINDS, VERB_WORDS, meaning, words_of
from mutualrl.errors import MutualRLError
from mutualrl.expert import BoundedBot, accept_alike, has_instruction, stack_subgoals
from mutualrl.subgoals import EXPLORE, Subgoal, visible_objects
from mutualrl.teachers.base import Advice, Teacher


class BotTeacher(Teacher):
    """One bot per live environment, told each step which action was really taken.

    The bot plans from the environment's true state (the `envs` given to `advise`), so it is
    privileged: use it as an oracle, not as a text teacher. `smoothing` spreads that much probability
    mass evenly over the other actions (0 gives one-hot advice). With subgoal advice it names its
    own current step (`subgoal`: the ceiling of the subgoal language), or with `through_clozes`
    answers the clozes a text teacher is asked, as the text teacher's upper bound.
    """

    name = "bot"

    def __init__(self, smoothing: float = 0.0, through_clozes: bool = False):
        super().__init__()
        self.names_subgoals = not through_clozes
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self._bots: dict[int, BoundedBot] = {}
        self._lost: set[int] = set()  # environments whose bot could not plan at the last step

    def observe(self, envs: Sequence[Any], last_actions: Sequence[str | None]) -> list[str]:
        """Keep one bot per live environment in step with it (a new bot where an episode starts,
        else replanned after the action really taken); returns each bot's next action (MiniGrid's
        seven actions; the task may offer fewer)."""
        suggested = []
        for env, last in zip(envs, last_actions):
            if not has_instruction(env):
                raise MutualRLError(f"the bot teacher plans BabyAI missions; {env.spec.id if env.spec else 'this level'} "
                                    "states its mission in text only (use a text teacher, or a BabyAI level)")
            key = id(env)
            if last is None or key not in self._bots or key in self._lost:
                self._bots[key] = BoundedBot(env)
                self._lost.discard(key)
                taken = None
            else:
                taken = env.actions(FULL_ACTIONS.index(last))
            suggested.append(FULL_ACTIONS[int(self._replan(key, env, taken))])
        return suggested

    def _replan(self, key: int, env: Any, taken: Any) -> Any:
        """The bot's next action; where the agent's own acts broke the bot's plan (with all seven
        actions it may open a box, or pick up or drop what the plan did not expect, which the bot
        asserts against), a new bot plans from here; one that cannot either has no plan for this
        step, and the next step starts another."""
        try:
            accept_alike(self._bots[key], taken)
            return self._bots[key].replan(taken)
        except (AssertionError, DisappearedBoxError):
            self._bots[key] = BoundedBot(env)
        try:
            return self._bots[key].replan(None)
        except (AssertionError, DisappearedBoxError):
            self._bots[key].stack = []
            self._lost.add(key)
            return env.actions.done

    def expert_actions(self, situations: Sequence[Situation], envs: Sequence[Any] | None) -> list[str]:
        """The bot's action text for each situation, planned from its live environment."""
        self._check_envs(situations, envs)
        return self.observe(envs, [s.last_action for s in situations])

    def expert_subgoals(self, env: Any, image: np.ndarray) -> list[Subgoal]:
        """The subgoals the bot's stack means in the environment's current view `image` (after `observe`)."""
        return stack_subgoals(self._bots[id(env)], env, image)

    def subgoal(self, env: Any, image: np.ndarray) -> Subgoal:
        """The bot's own current step in the subgoal language (after `observe`)."""
        return self.expert_subgoals(env, image)[0]

    @staticmethod
    def _check_envs(situations: Sequence[Situation], envs: Sequence[Any] | None) -> None:
        if envs is None or len(envs) != len(situations):
            raise ValueError("the bot teacher plans from the live environments: pass one per situation as envs=")

    def advise(self, situations: Sequence[Situation], envs: Sequence[Any] | None = None) -> list[Advice]:
        if situations and situations[0].cloze:
            return self._ground(situations, envs)
        advice = []
        for s, expert in zip(situations, self.expert_actions(situations, envs)):
            n = len(s.actions)
            probs = np.full(n, self.smoothing / max(1, n - 1) if n > 1 else 0.0)
            if expert in s.actions:
                probs[s.actions.index(expert)] = 1.0 - self.smoothing if n > 1 else 1.0
            else:  # the bot wants an action the task does not offer (e.g. 'done'): no preference
                probs[:] = 1.0 / n
            advice.append(Advice(probs=probs))
        return advice

    def _ground(self, situations: Sequence[Situation], envs: Sequence[Any] | None) -> list[Advice]:
        """Answers to grounding clozes that make the bot's current subgoal the choice: its verb,
        and its object's colour and kind in every role (for a drop, those of the step it makes
        room for); where it explores, the name of an object not in view (bots kept in step by
        `observe`)."""
        self._check_envs(situations, envs)
        wanted = {}
        for env in {id(env): env for env in envs}.values():
            image = env.gen_obs()["image"]
            # a drop frees the hands for the step below it, or, the last of the plan so far, for an
            # object in view the bot will plan for next, or else the object the mission names
            ahead = [Subgoal("pick up", o) for o in visible_objects(image) if IDX_TO_OBJECT[o[0]] != "door"]
            goal = next((g for g in self.expert_subgoals(env, image) if g.verb != "drop"), None) or \
                next(iter(ahead), None) or _named(env)
            seen = {words_of(obj) for obj in visible_objects(image)}
            name = words_of(goal.obj) if goal.verb != EXPLORE else next(
                (c, k) for c in COLOURS for k in KINDS if (c, k) not in seen)
            wanted[id(env)] = (VERB_WORDS.get(goal.verb), *name)
        advice = []
        for s, env in zip(situations, envs):
            word, colour, kind = wanted[id(env)]
            _, asks, given = meaning(s)
            answer = word if asks is None else colour if asks == "colour" else kind if given == colour else None
            probs = np.full(len(s.actions), 1.0 / len(s.actions))
            if answer in s.actions:
                probs = (np.asarray(s.actions) == answer).astype(float)
            advice.append(Advice(probs=probs))
        return advice


def _named(env: Any) -> Subgoal:
    """Picking up the object a mission such as "pick up the ball" names (explore for other missions)."""
    desc = getattr(env.instrs, "desc", None)
    if desc is None or desc.type not in KINDS or desc.type == "door":
        return Subgoal(EXPLORE)
    return Subgoal("pick up", (OBJECT_TO_IDX[desc.type], COLOR_TO_IDX[desc.color or COLOURS[0]]))

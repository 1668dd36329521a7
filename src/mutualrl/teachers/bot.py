"""The BabyAI bot as a teacher: the expert for advice accuracy, an upper bound, a fast test teacher."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from minigrid.utils.baby_ai_bot import BabyAIBot

from mutualrl.envs import FULL_ACTIONS, Situation
from mutualrl.teachers.base import Advice, Teacher


class BotTeacher(Teacher):
    """One bot per live environment, told each step which action was really taken.

    The bot plans from the environment's true state (the `envs` given to `advise`), so it is
    privileged: use it as an oracle, not as a text teacher. `smoothing` spreads that much probability
    mass evenly over the other actions (0 gives one-hot advice).
    """

    name = "bot"

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self._bots: dict[int, BabyAIBot] = {}

    def expert_actions(self, situations: Sequence[Situation], envs: Sequence[Any] | None) -> list[str | None]:
        """The bot's action text for each situation (MiniGrid's seven actions; the task may offer fewer)."""
        if envs is None or len(envs) != len(situations):
            raise ValueError("the bot teacher plans from the live environments: pass one per situation as envs=")
        suggested = []
        for s, env in zip(situations, envs):
            key = id(env)
            if s.last_action is None or key not in self._bots:
                self._bots[key] = BabyAIBot(env)
                taken = None
            else:
                taken = env.actions(FULL_ACTIONS.index(s.last_action))
            action = int(self._bots[key].replan(taken))
            suggested.append(FULL_ACTIONS[action])
        return suggested

    def advise(self, situations: Sequence[Situation], envs: Sequence[Any] | None = None) -> list[Advice]:
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

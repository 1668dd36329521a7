"""The BabyAI bot acting in one environment while a subgoal guidance advises and notes each step,
for the tests of what the guidance records (hindsight, decisions)."""

from typing import Any, Iterator

import numpy as np

from mutualrl.envs import FULL_ACTIONS, unwrapped_envs
from mutualrl.teachers import BotTeacher


def driven_by_the_bot(envs: Any, obs: dict, guidance: Any, steps: int) -> Iterator[tuple[int, Any, float, bool]]:
    """Up to `steps` steps of the bot's actions in the one-copy vector env `envs` (just reset to
    `obs`), the guidance's teacher kept in step and asked at each; yields (step, live environment,
    reward, terminated) after each step."""
    driver, last = BotTeacher(), None
    guidance.start_rollout()
    for step in range(steps):
        live = unwrapped_envs(envs)
        want = driver.observe(live, [last])[0]
        guidance.teacher.observe(live, [last])
        guidance.advise(obs, live, step, np.zeros(1))
        obs, reward, terminated, truncated, info = envs.step(np.array([FULL_ACTIONS.index(want)]))
        guidance.after_step(obs, terminated | truncated, terminated & (reward > 0), info, step)
        last = want
        yield step, live[0], float(reward[0]), bool(terminated[0])

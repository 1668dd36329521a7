"""The words a text teacher is asked in: its system message and the question about one state."""

from __future__ import annotations

import functools

from mutualrl.envs import Situation

SYSTEM_PROMPT = "You guide an agent in a grid world. Answer with one action."


@functools.lru_cache(maxsize=65_536)
def question(situation: Situation) -> str:
    """The user message a text teacher answers, also the prompt key. Everything but the state's
    description comes first, so prompts of one task share all but their last few tokens (the
    prefix a local model computes once). Cached: a state met again is not formatted again."""
    return (
        f"Mission: {situation.mission}.\nActions: {', '.join(situation.actions)}.\n"
        f"{situation.question}\n{situation.description}"
    )

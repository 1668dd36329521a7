"""The words a text teacher is asked in: its system message, the question about one state, and
the clozes about a mission, whose answer the teacher's own reply begins."""

from __future__ import annotations

import functools

from mutualrl.envs import Situation

SYSTEM_PROMPT = "You guide an agent in a grid world. Answer with one action."
#: a cloze's answer is a word of the teacher's reply, not an action
CLOZE_SYSTEM_PROMPT = "You guide an agent in a grid world."


def system_prompt(situation: Situation) -> str:
    return CLOZE_SYSTEM_PROMPT if situation.cloze else SYSTEM_PROMPT


@functools.lru_cache(maxsize=65_536)
def user_message(situation: Situation) -> str:
    """What the teacher is asked. Everything but the state's description comes first, so prompts
    of one task share all but their last few tokens (the prefix a local model computes once). A
    cloze holds the mission and its question only: its answer begins the teacher's reply."""
    if situation.cloze:
        return f"Mission: {situation.mission}.\n{situation.question}"
    return (
        f"Mission: {situation.mission}.\nActions: {', '.join(situation.actions)}.\n"
        f"{situation.question}\n{situation.description}"
    )


@functools.lru_cache(maxsize=65_536)
def question(situation: Situation) -> str:
    """The prompt key: everything the answer depends on. For a cloze, the reply's start and the
    words offered to complete it too. Cached: a state met again is not formatted again."""
    if situation.cloze:
        return f"{user_message(situation)}\n{situation.description} ({' | '.join(situation.actions)})"
    return user_message(situation)

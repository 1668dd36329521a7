"""The verb read the other way round: how likely the mission is as each verb's usual words said
in other words (a noisy channel, p(mission | verb)).

Asked for the mission in the usual words, a small model maps a verb it knows ("grab" -> pick) but
not one it does not: "fetch the ball" read as go to it, "move the ball close to the key" as open
(`grounding.VERB_QUESTION`). Asked the other way, for each verb the likelihood of the mission as
the reply to "Mission: pick up the object. Say it in other words.", the model reads the missions
of two objects as "put" whatever their words, but reads picking up as going to. Each read fails
where the other holds, so the verb is their product, the channel's share weighed by
`grounding.Design.channel_weight` (`benchmarks/verb_forms.py`, docs/results.md).

The questions name the verb and no object: the mission is the one answer, and which verb makes it
likeliest is the language model's reading, as grounding is; no code reads the mission's words.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from mutualrl.envs import Situation

QUESTION, LEAD = "Say it in other words.", "In other words:"
#: each verb word's usual words, with no object named
USUAL_WORDS = {"go": "go to the object", "pick": "pick up the object", "put": "put the object next to the other object",
               "open": "open the door"}
_WORD_OF = {said: word for word, said in USUAL_WORDS.items()}


@functools.lru_cache(maxsize=4096)
def clozes(mission: str, words: tuple[str, ...]) -> tuple[Situation, ...]:
    """One question per verb word: the usual words as the mission, this mission as the one answer."""
    return tuple(Situation(USUAL_WORDS[w], LEAD, (f"{mission}.",), question=QUESTION, cloze=True) for w in words)


def is_channel(cloze: Situation) -> bool:
    return cloze.description == LEAD and cloze.mission in _WORD_OF


def verb_of(cloze: Situation) -> str:
    """The verb word whose usual words a channel cloze asks about."""
    return _WORD_OF[cloze.mission]


def combined(direct: np.ndarray, likelihoods: Sequence[float], weight: float) -> np.ndarray:
    """The verb's distribution: the direct read's times the channel's (its likelihoods normalised
    over the verbs) to the power `weight`, normalised."""
    logs = np.log(np.clip(np.asarray(likelihoods, dtype=np.float64), 1e-300, None))
    channel = logs - np.logaddexp.reduce(logs)
    mixed = np.log(np.clip(np.asarray(direct, dtype=np.float64), 1e-300, None)) + weight * channel
    p = np.exp(mixed - mixed.max())
    return p / p.sum()

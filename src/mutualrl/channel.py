"""The verb read the other way round: how likely the mission is as each verb's usual words said
in other words (a noisy channel, p(mission | verb)).

Asked for the mission in the usual words, a small model maps a verb it knows ("grab" -> pick) but
not one it does not: "fetch the ball" read as go to it, "move the ball close to the key" as open
(`grounding.VERB_QUESTION`). Asked the other way, for each verb the likelihood of the mission as
the reply to "Mission: pick up the object. Say it in other words.", the model reads the missions
of two objects as "put" whatever their words, but reads picking up as going to. Each read fails
where the other holds, so the verb is their product, the channel's share weighed by
`design.Design.channel_weight` (`benchmarks/verb_forms.py`, docs/results.md).

The two objects of `put` are read so too: the likelihood of the mission after "put the red object
next to the other object" for each colour, and "put the ball next to the other object" for each
kind (and "put the object next to the ...", for the object to put it next to). Read from the mission
alone, the object to move is often the last one named ("move the grey key close to the blue box"
read "blue box"); the other way round, the mission is likelier after the object it moves.

The colour of a door to open is read so too, after "open the red door" for each colour: asked
for the mission, the model says "open the door" whether or not it names a colour, and spreads the
named colour thin (0.37 of the colours' share on `Open`'s missions as given, 0.24 in other words);
the other way round it is sure (`Design.door_channel`, off by default: its students were slower).

The questions name no object of the mission: the mission is the one answer, and which usual words
make it likeliest is the language model's reading, as grounding is; no code reads the mission's words.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from mutualrl.envs import Situation
from mutualrl.subgoals import COLOURS, KINDS

QUESTION, LEAD = "Say it in other words.", "In other words:"
#: each verb word's usual words, with no object named
USUAL_WORDS = {"go": "go to the object", "pick": "pick up the object", "put": "put the object next to the other object",
               "open": "open the door"}
#: put's usual words with one of its objects named by its colour, or by its kind, per role
PUT_WORDS = {"move": ("put the {} object next to the other object", "put the {} next to the other object"),
             "fixed": ("put the object next to the {} object", "put the object next to the {}")}
#: open's usual words with the door named by its colour (its kind is a door's: only doors are opened)
DOOR_WORDS = "open the {} door"
#: usual words -> what they say: ("verb", None, word), or (role, "colour", colour) or (role, "kind", kind), or a
#: place of a verb word's object (`locations`)
_ABOUT: dict[str, tuple[str, str | None, str]] = (
    {said: ("verb", None, word) for word, said in USUAL_WORDS.items()}
    | {PUT_WORDS[role][0].format(c): (role, "colour", c) for role in PUT_WORDS for c in COLOURS}
    | {PUT_WORDS[role][1].format(k): (role, "kind", k) for role in PUT_WORDS for k in KINDS}
    | {DOOR_WORDS.format(c): ("open", "colour", c) for c in COLOURS})


def describe(said: str, meant: tuple[str, str | None, str]) -> None:
    """Read the likelihood of a mission after the usual words `said` as saying `meant` (`about`)."""
    _ABOUT[said] = meant


def clozes(mission: str, words: tuple[str, ...]) -> tuple[Situation, ...]:
    """One question per verb word: the usual words as the mission, this mission as the one answer."""
    return tuple(cloze(USUAL_WORDS[w], mission) for w in words)


def put_clozes(mission: str) -> tuple[Situation, ...]:
    """One question per colour and per kind of each object of `put`."""
    return tuple(cloze(said, mission) for said, (role, _, _) in _ABOUT.items() if role in PUT_WORDS)


@functools.lru_cache(maxsize=4096)
def door_clozes(mission: str) -> tuple[Situation, ...]:
    """One question per colour of the door to open."""
    return tuple(cloze(DOOR_WORDS.format(c), mission) for c in COLOURS)


def cloze(said: str, mission: str) -> Situation:
    """The question whose one answer is `mission`, after the usual words `said`."""
    return Situation(said, LEAD, (f"{mission}.",), question=QUESTION, cloze=True, untaught=True)


def is_channel(cloze: Situation) -> bool:
    return cloze.description == LEAD and cloze.mission in _ABOUT


def about(cloze: Situation) -> tuple[str, str | None, str]:
    """What a channel cloze's usual words say: a verb word, or a colour or kind of a role's object."""
    return _ABOUT[cloze.mission]


def names(colours: Sequence[float], kinds: Sequence[float]) -> np.ndarray:
    """A role's likelihoods per object name (colours, kinds), from those of its colour and its kind."""
    return np.outer(np.asarray(colours, dtype=np.float64), np.asarray(kinds, dtype=np.float64))


def combined(direct: np.ndarray, likelihoods: np.ndarray, weight: float) -> np.ndarray:
    """The direct read's distribution (any shape) times the channel's (its likelihoods normalised)
    to the power `weight`, normalised."""
    logs = np.log(np.clip(np.asarray(likelihoods, dtype=np.float64), 1e-300, None))
    mixed = np.log(np.clip(np.asarray(direct, dtype=np.float64), 1e-300, None)) + weight * (logs - np.logaddexp.reduce(logs.ravel()))
    p = np.exp(mixed - mixed.max())
    return p / p.sum()

"""Where the mission's object lies: "the door on your left", "a ball in front of you".

BabyAI places an object by where it lay from the agent's pose at the start of the episode (its
own verifier's test: left or right of the line the agent first faced, ahead of or behind it). Such
a mission names one object of several alike (on `OpenDoor` half of the missions name the door so),
and a reading of its name alone picks any door in view.

The model reads the location the other way round, as the channel reads the verb (`channel`): the
likelihood of the mission as the reply to a verb's usual words with each location said after
them ("open the door on your left"), and without one. Asked forwards ("Where is the object?"), the
model named the right place in at most 0.60 of the missions that say one, and never said none; the
other way round, the location said is the likeliest in every one, where the usual words carry the
mission's verb (0.78 with "the object" for all). A mission without a location is likelier after
some location too (by up to 1.4 nats, against at least 5.9 where the mission says that one), so
each location weighs `Design.location_prior` against none (`benchmarks/location_forms.py`,
docs/results.md).
No code reads the mission's words: which usual words make it likeliest is the model's reading.

Which places a visible object is at follows from the agent's odometry, as `subgoals.Sightings`
does: the pose at the start of the episode (`sequences.PartsDone.started`) and the pose now.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mutualrl import channel
from mutualrl.envs import Situation
from mutualrl.subgoals import Obj, axes, level_cell, object_mask, visible_objects

#: the places BabyAI's missions name, as said after a verb's usual words
PLACES = {"left": " on your left", "right": " on your right", "front": " in front of you", "behind": " behind you"}
#: the verb words whose object a mission may place (put's two objects are read without a place)
PLACED_VERBS = ("go", "pick", "open")
#: a pose: the agent's cell (x, y) and direction (MiniGrid: 0 east, 1 south, 2 west, 3 north)
Pose = tuple[int, int, int]

for _word in PLACED_VERBS:
    for _place, _said in PLACES.items():
        channel.describe(channel.USUAL_WORDS[_word] + _said, (_word, "place", _place))


def pose_of(env: Any) -> Pose:
    """The agent's pose in a MiniGrid level (or a wrapper of one)."""
    return int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir)


def clozes(mission: str, words: Sequence[str]) -> tuple[Situation, ...]:
    """For each verb word that may place its object, the mission after its usual words with each
    place said, and without one (the verb's own channel cloze)."""
    return tuple(channel.cloze(channel.USUAL_WORDS[w] + said, mission)
                 for w in words if w in PLACED_VERBS for said in ("", *PLACES.values()))


def place_probs(said: dict[tuple, float], word: str, prior: float) -> np.ndarray | None:
    """p(place) for a verb word's object, over `PLACES` then "none", from the channel's likelihoods
    (`said`, by what the usual words say), each place weighed `prior` against none; None where the
    mission was not asked about every place."""
    keys = [(word, "place", p) for p in PLACES] + [("verb", None, word)]
    if not all(k in said for k in keys):
        return None
    logs = np.log(np.clip([said[k] for k in keys], 1e-300, None)) + np.log([prior] * len(PLACES) + [1.0])
    p = np.exp(logs - logs.max())
    return p / p.sum()


def places_in_view(image: np.ndarray, now: Pose, start: Pose) -> dict[Obj, frozenset[str]]:
    """The places each visible object (every cell bearing its name) is at, from the pose `start`,
    as BabyAI's missions name them: left or right of the line first faced, ahead of it or behind."""
    ahead, right = axes(start[2])
    found: dict[Obj, frozenset[str]] = {}
    for obj in visible_objects(image):
        places: set[str] = set()
        for cell in zip(*np.nonzero(object_mask(image, obj))):
            x, y = level_cell(cell, now[:2], now[2])
            x, y = x - start[0], y - start[1]
            along, across = x * ahead[0] + y * ahead[1], x * right[0] + y * right[1]
            places |= {p for p, holds in (("front", along > 0), ("behind", along < 0), ("left", across < 0),
                                          ("right", across > 0)) if holds}
        found[obj] = frozenset(places)
    return found

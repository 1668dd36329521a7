"""The facts of a state that decide the next step, in words a language model reads.

The clozes of `grounding` read the mission alone, so they cannot say that a locked door needs its
key first, or that full hands must be emptied. What decides such a step is a handful of facts:
what the agent carries, and the doors in view and whether each is locked, closed or open. They are
told as short sentences, keyed by what they say and never by where things lie, so that one read of
a question serves every state with the same facts.
"""

from __future__ import annotations

import numpy as np
from minigrid.core.constants import IDX_TO_OBJECT, STATE_TO_IDX

from mutualrl.grounding import words_of
from mutualrl.subgoals import Obj, carried, visible_objects

_DOOR = "door"
_STATE_NAMES = {i: name for name, i in STATE_TO_IDX.items()}


def _name(obj: Obj) -> str:
    """'red key': the object's words as the clozes name them."""
    return " ".join(words_of(obj))


def door_states(image: np.ndarray) -> dict[Obj, str]:
    """Each door in view and its state ("open", "closed" or "locked"; where two doors look alike,
    the most closed of them)."""
    order = ("open", "closed", "locked")
    states: dict[Obj, str] = {}
    types, colours, flags = (np.asarray(image)[..., k] for k in range(3))
    for obj in visible_objects(image):
        if IDX_TO_OBJECT[obj[0]] != _DOOR:
            continue
        here = (types == obj[0]) & (colours == obj[1])
        states[obj] = max((_STATE_NAMES[int(s)] for s in flags[here]), key=order.index)
    return states


def state_facts(image: np.ndarray) -> str:
    """'You carry a red key. The blue door is locked. You see a green ball.' from the agent's view."""
    holding = carried(image)
    doors = door_states(image)
    others = [o for o in visible_objects(image) if o not in doors]
    sentences = [f"You carry a {_name(holding)}." if holding is not None else "You carry nothing."]
    sentences += [f"The {_name(door)} is {state}." for door, state in doors.items()]
    if others:
        sentences.append("You see " + ", ".join(f"a {_name(o)}" for o in others) + ".")
    return " ".join(sentences)

"""The facts of a state that decide the next step, in words a language model reads.

The clozes of `grounding` read the mission alone, so they cannot say that a locked door needs its
key first, or that full hands must be emptied. What decides such a step is a handful of facts:
what the agent carries, and the doors in view and whether each is locked, closed or open. They are
told as short sentences, keyed by what they say and never by where things lie, so that one read of
a question serves every state with the same facts.

A locked door whose key is neither carried nor in view is told so ("The red key is not in view."):
told only "The red door is locked.", the untaught model names the door as the next step in 0.99
of its reads for every colour, so sure that the hold to it (`teachers.hf`) keeps it there whatever
the student finds; told the key is missing, it names the key in 0.2-0.35, a reading feedback can
move; zero-shot the choices stay the same (`benchmarks/step_forms.py --missing-keys on,off`,
docs/results.md).
"""

from __future__ import annotations

import numpy as np
from minigrid.core.constants import IDX_TO_OBJECT, OBJECT_TO_IDX, STATE_TO_IDX

from mutualrl.grounding import words_of
from mutualrl.subgoals import Obj, carried, visible_objects

_DOOR, _KEY = "door", "key"
#: whether a locked door's missing key is told (a benchmark compares without)
TELL_MISSING_KEYS = True
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


def key_of(door: Obj) -> Obj:
    """The key that opens `door` (its colour)."""
    return OBJECT_TO_IDX[_KEY], door[1]


def door_of(key: Obj) -> Obj:
    """The door that `key` opens (its colour)."""
    return OBJECT_TO_IDX[_DOOR], key[1]


def missing_keys(image: np.ndarray) -> set[Obj]:
    """The keys of the locked doors in view that are neither carried nor in view (told "not in
    view" where `TELL_MISSING_KEYS`)."""
    return _missing(door_states(image), set(visible_objects(image)) | {carried(image)})


def _missing(doors: dict[Obj, str], seen: set[Obj | None]) -> set[Obj]:
    return {key_of(door) for door, state in doors.items()
            if state == "locked" and key_of(door) not in seen} if TELL_MISSING_KEYS else set()


def state_facts(image: np.ndarray) -> str:
    """'You carry a red key. The blue door is locked. The blue key is not in view. You see a green
    ball.' from the agent's view."""
    holding, visible = carried(image), visible_objects(image)
    doors = door_states(image)
    missing = _missing(doors, set(visible) | {holding})
    others = [o for o in visible if o not in doors]
    sentences = [f"You carry a {_name(holding)}." if holding is not None else "You carry nothing."]
    for door, state in doors.items():
        sentences.append(f"The {_name(door)} is {state}.")
        if (key := key_of(door)) in missing:
            sentences.append(f"The {_name(key)} is not in view.")
    if others:
        sentences.append("You see " + ", ".join(f"a {_name(o)}" for o in others) + ".")
    return " ".join(sentences)

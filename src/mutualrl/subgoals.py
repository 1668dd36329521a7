"""Subgoals: the steps of a plan, in a language a small language model can speak.

A subgoal is a verb and one object (a door, key, ball or box, in view or seen earlier in the
episode): "go to the red ball", "pick up the blue key", "open the yellow door", "open the grey
box", "put next to the green key"; or `drop` (free the hands) or `explore` (look for what is not
yet seen). A text teacher chooses it from its answers to clozes about the mission
(`grounding`). The student sees a subgoal in its own terms: a mask of the named object's cells in
its 7x7 view, the verb, and where the object lies from the agent (ahead and to the right, in
cells, where it was last seen: `toward`).

The BabyAI bot's plan read in this language is the expert (`expert.stack_subgoals`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX, STATE_TO_IDX

#: The verbs a subgoal may carry, in the order of the student's verb input (a verb added later
#: comes last, so that a student trained before it keeps the meaning of its inputs).
VERBS: tuple[str, ...] = ("go to", "pick up", "put next to", "open", "explore", "drop")
EXPLORE = "explore"
#: verbs without an object
_BARE = (EXPLORE, "drop")
#: Length of the student's subgoal input: the 7x7 mask, the verb one-hot, then where the object
#: lies (cells ahead and to the right, over `TOWARD_SCALE`).
SUBGOAL_DIM = 49 + len(VERBS) + 2
TOWARD_SCALE = 8.0

#: the words an object's name is made of: its colour and its kind
COLOURS: tuple[str, ...] = tuple(COLOR_TO_IDX)
KINDS: tuple[str, ...] = ("ball", "box", "key", "door")
_OBJECTS = {OBJECT_TO_IDX[k] for k in KINDS}
_DOOR, _OPEN = OBJECT_TO_IDX["door"], STATE_TO_IDX["open"]
_FRONT, _AGENT = (3, 5), (3, 6)
_IS_OBJECT = np.isin(np.arange(256), sorted(_OBJECTS))  # per type index
#: the view's cells (column, row) nearest row first, the agent's own cell left out
_SCAN = tuple(np.array(axis) for axis in zip(*[(col, row) for row in range(6, -1, -1) for col in range(7)
                                                if (col, row) != _AGENT]))

#: an object as the view shows it: (type index, colour index)
Obj = tuple[int, int]


@dataclass(frozen=True)
class Subgoal:
    verb: str
    obj: Obj | None = None  # None for explore and drop

    def __post_init__(self) -> None:
        if self.verb not in VERBS or (self.obj is None) != (self.verb in _BARE):
            raise ValueError(f"a subgoal is one of {', '.join(VERBS)}, with an object but for {' and '.join(_BARE)}; "
                             f"got {self.verb!r} with {self.obj!r}")

    def __str__(self) -> str:
        """'pick up the red ball', 'drop' or 'explore'."""
        return self.verb if self.obj is None else f"{self.verb} the {IDX_TO_COLOR[self.obj[1]]} {IDX_TO_OBJECT[self.obj[0]]}"


def visible_objects(image: np.ndarray) -> list[Obj]:
    """Distinct (type, colour) of the doors, keys, balls and boxes in view, nearest row first
    (asked at every step of every copy: one numpy gather, not a Python loop over the cells)."""
    cells = np.asarray(image)[_SCAN]
    found = cells[_IS_OBJECT[cells[:, 0]]]
    return list(dict.fromkeys(zip(found[:, 0].tolist(), found[:, 1].tolist())))


def _object_at(image: np.ndarray, cell: tuple[int, int]) -> Obj | None:
    kind = int(image[cell][0])
    return (kind, int(image[cell][1])) if kind in _OBJECTS else None


def carried(image: np.ndarray) -> Obj | None:
    """The object the agent carries, if any."""
    return _object_at(image, _AGENT)


def front_object(image: np.ndarray) -> Obj | None:
    """The object in the cell the agent faces, if any."""
    return _object_at(image, _FRONT)


def faces_open_door(image: np.ndarray) -> bool:
    """Whether the cell the agent faces holds an open door."""
    return int(image[_FRONT][0]) == _DOOR and int(image[_FRONT][2]) == _OPEN


def object_mask(image: np.ndarray, obj: Obj) -> np.ndarray:
    """(7, 7) bool: the cells of the view holding `obj` (never the agent's own cell)."""
    mask = (image[..., 0] == obj[0]) & (image[..., 1] == obj[1])
    mask[_AGENT] = False
    return mask


def nearest_cell(image: np.ndarray, obj: Obj) -> tuple[int, int] | None:
    """The view's cell (column, row) holding `obj` nearest the agent (Manhattan); None out of view."""
    cols, rows = np.nonzero(object_mask(image, obj))
    if not len(cols):
        return None
    k = int(np.argmin(np.abs(cols - _AGENT[0]) + np.abs(rows - _AGENT[1])))
    return int(cols[k]), int(rows[k])


def cells_away(image: np.ndarray, obj: Obj) -> int | None:
    """Steps (Manhattan, in the view's grid) from the agent to the nearest cell holding `obj`;
    None where it is out of view."""
    cell = nearest_cell(image, obj)
    return None if cell is None else abs(cell[0] - _AGENT[0]) + abs(cell[1] - _AGENT[1])


def subgoal_vector(image: np.ndarray, subgoal: Subgoal, toward: tuple[int, int] | None = None) -> np.ndarray:
    """The student's input for a subgoal: the object's mask (49, column-major as the view), the
    verb, and `toward`, the object's cells ahead and to the right of the agent (zeros unknown)."""
    out = np.zeros(SUBGOAL_DIM, dtype=np.float32)
    if subgoal.obj is not None:
        out[:49] = object_mask(image, subgoal.obj).reshape(-1)
    out[49 + VERBS.index(subgoal.verb)] = 1.0
    if toward is not None:
        out[-2:] = np.clip(np.asarray(toward, dtype=np.float32) / TOWARD_SCALE, -1.0, 1.0)
    return out


def reached(subgoal: Subgoal, image: np.ndarray, start_objects: Sequence[Obj]) -> bool:
    """Whether the subgoal is done in this view: facing the object (go to), carrying it (pick up),
    facing it open or gone (open: a door opens, a box breaks open), hands empty again (put next
    to, drop), or something new in view (explore)."""
    front = front_object(image)
    if subgoal.verb == "go to":
        return front == subgoal.obj
    if subgoal.verb == "pick up":
        return carried(image) == subgoal.obj
    if subgoal.verb == "open":
        if subgoal.obj[0] == _DOOR:
            return front == subgoal.obj and int(image[_FRONT][2]) == _OPEN
        return subgoal.obj not in visible_objects(image)
    if subgoal.verb in ("put next to", "drop"):
        return carried(image) is None
    return bool(set(visible_objects(image)) - set(start_objects))


class Sightings:
    """Where each object was last seen in an episode, in the level's cells, and where that lies
    from the agent now (`toward`): the agent's own odometry, which lets a subgoal name an object
    out of view. The pose (position, direction) is the level's; MiniGrid's view puts the agent at
    column 3 of the bottom row, facing up."""

    def __init__(self) -> None:
        self._seen: dict[Obj, tuple[int, int]] = {}

    def clear(self) -> None:
        self._seen.clear()

    def see(self, image: np.ndarray, pos: Sequence[int], direction: int) -> None:
        """Note the nearest cell of each object in this view."""
        for obj in visible_objects(image):
            self._seen[obj] = level_cell(nearest_cell(image, obj), pos, direction)

    def toward(self, obj: Obj | None, pos: Sequence[int], direction: int) -> tuple[int, int] | None:
        """Cells ahead and to the right from the agent to where `obj` was last seen (None: never)."""
        where = self._seen.get(obj) if obj is not None else None
        if where is None:
            return None
        ahead, right = axes(direction)
        offset = (where[0] - pos[0], where[1] - pos[1])
        return (offset[0] * ahead[0] + offset[1] * ahead[1], offset[0] * right[0] + offset[1] * right[1])


def level_cell(cell: tuple[int, int], pos: Sequence[int], direction: int) -> tuple[int, int]:
    """The level's cell of a view cell (column, row), the agent at `pos` facing `direction`."""
    ahead, right = axes(direction)
    forward, lateral = _AGENT[1] - int(cell[1]), int(cell[0]) - _AGENT[0]
    return int(pos[0] + forward * ahead[0] + lateral * right[0]), int(pos[1] + forward * ahead[1] + lateral * right[1])


def axes(direction: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The level's unit vectors ahead of and to the right of an agent facing `direction` (MiniGrid:
    0 east, 1 south, 2 west, 3 north; y grows southwards)."""
    ahead = ((1, 0), (0, 1), (-1, 0), (0, -1))[direction]
    return ahead, (-ahead[1], ahead[0])

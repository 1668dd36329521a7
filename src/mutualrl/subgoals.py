"""Subgoals: high-level advice a small language model can give well.

A subgoal is a verb and one visible object ("go to the red ball", "pick up the blue key") or
`explore` when nothing in view is relevant. A text teacher chooses it from its answers to
clozes about the mission (`grounding`). The student sees a subgoal in its own terms: a mask of
the named object's cells in its 7x7 view plus the verb.

The BabyAI bot's stack of subgoals, read in these terms, is the expert (`stack_subgoals`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.envs.babyai.core.verifier import ObjDesc, PutNextInstr
from minigrid.utils.baby_ai_bot import (BabyAIBot, DisappearedBoxError, DropSubgoal, ExploreSubgoal,
                                        GoNextToSubgoal, OpenSubgoal, PickupSubgoal)

from mutualrl.envs import FULL_ACTIONS

#: The verbs a subgoal may carry, in the order of the student's verb input.
VERBS: tuple[str, ...] = ("go to", "pick up", "put next to", "open", "explore")
EXPLORE = "explore"
#: Length of the student's subgoal input: the 7x7 mask, then the verb one-hot.
SUBGOAL_DIM = 49 + len(VERBS)

_OBJECTS = {OBJECT_TO_IDX[k] for k in ("door", "key", "ball", "box")}
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
    obj: Obj | None = None  # None for explore

    def __str__(self) -> str:
        """'pick up the red ball', or 'explore'."""
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


def object_mask(image: np.ndarray, obj: Obj) -> np.ndarray:
    """(7, 7) bool: the cells of the view holding `obj` (never the agent's own cell)."""
    mask = (image[..., 0] == obj[0]) & (image[..., 1] == obj[1])
    mask[_AGENT] = False
    return mask


def cells_away(image: np.ndarray, obj: Obj) -> int | None:
    """Steps (Manhattan, in the view's grid) from the agent to the nearest cell holding `obj`;
    None where it is out of view."""
    cols, rows = np.nonzero(object_mask(image, obj))
    if not len(cols):
        return None
    return int((np.abs(cols - _AGENT[0]) + np.abs(rows - _AGENT[1])).min())


def subgoal_vector(image: np.ndarray, subgoal: Subgoal) -> np.ndarray:
    """The student's input for a subgoal: the object's mask (49, column-major as the view) and the verb."""
    out = np.zeros(SUBGOAL_DIM, dtype=np.float32)
    if subgoal.obj is not None:
        out[:49] = object_mask(image, subgoal.obj).reshape(-1)
    out[49 + VERBS.index(subgoal.verb)] = 1.0
    return out


def reached(subgoal: Subgoal, image: np.ndarray, start_objects: Sequence[Obj]) -> bool:
    """Whether the subgoal is done in this view: facing the object (go to), carrying it (pick up),
    facing it open (open), hands empty again (put next to), or something new in view (explore)."""
    front = front_object(image)
    if subgoal.verb == "go to":
        return front == subgoal.obj
    if subgoal.verb == "pick up":
        return carried(image) == subgoal.obj
    if subgoal.verb == "open":
        return front == subgoal.obj and int(image[_FRONT][2]) == _OPEN
    if subgoal.verb == "put next to":
        return carried(image) is None
    return bool(set(visible_objects(image)) - set(start_objects))


# ------------------------------------------------------------------------ the expert


def _in_view(verb: str, desc: ObjDesc, image: np.ndarray) -> list[Subgoal]:
    """The subgoal on every visible object the description matches (any type or colour where it
    names none: "pick up a red object", "go to the ball"); explore where none is in view."""
    kind = None if desc.type is None else OBJECT_TO_IDX[desc.type]
    colour = None if desc.color is None else COLOR_TO_IDX[desc.color]
    found = [Subgoal(verb, obj) for obj in visible_objects(image) if kind in (None, obj[0]) and colour in (None, obj[1])]
    return found or [Subgoal(EXPLORE)]


def stack_subgoals(bot: BabyAIBot, env: Any, image: np.ndarray) -> list[Subgoal]:
    """The bot's current subgoal in the student's terms, as the subgoals that match it: its
    topmost subgoal (with the action the subgoal below says it leads to) on each object in view it
    can mean; explore where the bot explores or its object is out of view (a teacher that sees
    only the view must look)."""
    stack = bot.stack
    if not stack or stack[-1].is_exploratory():
        return [Subgoal(EXPLORE)]
    top = stack[-1]
    front = front_object(image)
    if isinstance(top, PickupSubgoal) and front is not None:
        return [Subgoal("pick up", front)]
    if isinstance(top, OpenSubgoal) and front is not None and front[0] == _DOOR:
        return [Subgoal("open", front)]
    if isinstance(top, DropSubgoal) and isinstance(env.instrs, PutNextInstr):
        return _in_view("put next to", env.instrs.desc_fixed, image)
    if isinstance(top, GoNextToSubgoal) and isinstance(top.datum, ObjDesc):
        below = stack[-2] if len(stack) > 1 else None
        verb = {"PutNext": "put next to", "Open": "open"}.get(top.reason) or (
            "pick up" if isinstance(below, PickupSubgoal) else "go to")
        return _in_view(verb, top.datum, image)
    return [Subgoal(EXPLORE)]


# ------------------------------------------------------------------ a subgoal teacher acting alone


class _ExploreUntilTold(ExploreSubgoal):
    """Explore that stays on the bot's stack until another subgoal replaces it (the bot drops its
    own exploration as soon as its plan no longer needs it)."""

    def is_exploratory(self) -> bool:
        return False


def bot_plan(bot: BabyAIBot, subgoal: Subgoal, env: Any) -> list:
    """The subgoal as a stack of the bot's own subgoals (the top is the last)."""
    if subgoal.verb == EXPLORE:
        return [_ExploreUntilTold(bot)]
    desc = ObjDesc(IDX_TO_OBJECT[subgoal.obj[0]], IDX_TO_COLOR[subgoal.obj[1]])
    desc.find_matching_objs(env)
    return {"go to": lambda: [GoNextToSubgoal(bot, desc)],
            "pick up": lambda: [PickupSubgoal(bot), GoNextToSubgoal(bot, desc)],
            "put next to": lambda: [DropSubgoal(bot), GoNextToSubgoal(bot, desc, reason="PutNext")],
            "open": lambda: [OpenSubgoal(bot), GoNextToSubgoal(bot, desc, reason="Open")]}[subgoal.verb]()


class SubgoalHands:
    """The BabyAI bot's planner carrying out the subgoals it is told, not its own: how a subgoal
    teacher acts alone. The teacher chooses what to do; the bot only finds the way."""

    def __init__(self) -> None:
        self._bots: dict[int, BabyAIBot] = {}
        self._doing: dict[int, Subgoal | None] = {}

    def act(self, env: Any, subgoal: Subgoal, last_action: str | None) -> str:
        """The action towards `subgoal` in the live `env` (`last_action` None at an episode's start)."""
        key = id(env)
        if last_action is None or key not in self._bots:
            self._bots[key], self._doing[key], taken = BabyAIBot(env), None, None
        else:
            taken = env.actions(FULL_ACTIONS.index(last_action))
        bot = self._bots[key]
        if subgoal != self._doing[key]:
            bot.stack, self._doing[key] = bot_plan(bot, subgoal, env), subgoal
        try:
            action = bot.replan(taken)
        except (AssertionError, DisappearedBoxError):  # nothing the planner can do for it here
            del self._bots[key]  # the next step starts a new bot
            return "done"
        if not bot.stack:  # done: the next step follows whatever the teacher says then
            self._doing[key] = None
        return FULL_ACTIONS[int(action)]

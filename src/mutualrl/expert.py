"""The BabyAI bot and the subgoal language: its plan read as subgoals (`stack_subgoals`), and
its planner carrying out the subgoals it is told (`SubgoalHands`).

The bot's stack holds go-next-to (an object, a door, or a bare position), pick up, drop, open,
close and explore. Each is read as the step it serves: a position before a drop is "drop", a
position before a pick-up is "pick up" the object lying there, a position before an open is
"open" that door, a drop beside the object a mission names is "put next to" it. Nothing is
dropped: an object out of view is named all the same (the student is told where it lies).

The language names an object by its kind and colour, and leaves which of those alike, and where
to drop, to the hands; the bot, told what an agent really did, takes such a step done on an
object alike as its own (`accept_alike`) instead of undoing it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX
from minigrid.core.world_object import WorldObj
from minigrid.envs.babyai.core.verifier import ObjDesc, PutNextInstr
from minigrid.utils.baby_ai_bot import (BabyAIBot, CloseSubgoal, DisappearedBoxError, DropSubgoal, ExploreSubgoal,
                                        GoNextToSubgoal, OpenSubgoal, PickupSubgoal)
from minigrid.utils.baby_ai_bot import Subgoal as BotStep

from mutualrl.envs import FULL_ACTIONS, instruction_parts
from mutualrl.subgoals import EXPLORE, Obj, Subgoal, front_object, visible_objects

_BOX = OBJECT_TO_IDX["box"]


class PlanCycle(AssertionError):
    """The bot searched more than `BoundedBot.searches_per_step` times for one step: its replanning
    cycles (an AssertionError, as the bot's other ways of saying it cannot plan)."""


class LostTarget(AssertionError):
    """A step of the bot's plan lost its target to acts the bot did not plan (its go-next-to step
    then holds no position and the bot's own code fails on it; measured: a student's random acts on
    `KeyCorridorS3R1`): like the bot's asserts, a plan it cannot make."""


class BoundedBot(BabyAIBot):
    """The BabyAI bot, with a bound on the path searches of one step. Told of acts it did not plan,
    its replanning can cycle between exploring and a step of its own within one step (measured: one
    `GoToImpUnlock` step ran for minutes); past the bound it gives the step up like a plan it cannot make."""

    searches_per_step = 200

    def replan(self, action_taken: Any = None) -> Any:
        self._searches = 0
        try:
            return super().replan(action_taken)
        except TypeError as error:  # a go-next-to step left without a target by acts it did not plan
            raise LostTarget(str(error)) from error

    def _shortest_path(self, *args: Any, **kwargs: Any) -> Any:
        self._searches = getattr(self, "_searches", 0) + 1
        if self._searches > self.searches_per_step:
            raise PlanCycle(f"more than {self.searches_per_step} path searches for one step")
        return super()._shortest_path(*args, **kwargs)


def has_instruction(env: Any) -> bool:
    """Whether a level states its mission as a BabyAI instruction, which the bot's own plan needs
    (plain MiniGrid levels, such as DoorKey, give only the mission's text)."""
    return getattr(env.unwrapped, "instrs", None) is not None


def _obj(world: WorldObj | None) -> Obj | None:
    return None if world is None else (OBJECT_TO_IDX[world.type], COLOR_TO_IDX[world.color])


def _put_next_targets(env: Any, holding: Obj | None) -> list[ObjDesc]:
    """The objects the mission says to put what is carried next to (any part of a sequence)."""
    return [instr.desc_fixed for instr in instruction_parts(env.unwrapped.instrs) if isinstance(instr, PutNextInstr)
            and holding is not None and any(_obj(o) == holding for o in instr.desc_move.obj_set)]


def _named(env: Any) -> set[Obj]:
    """The objects some part of the mission describes."""
    descs = [getattr(instr, name) for instr in instruction_parts(env.unwrapped.instrs)
             for name in ("desc", "desc_move", "desc_fixed") if hasattr(instr, name)]
    return {_obj(o) for desc in descs for o in desc.obj_set}


def _verb_for(step: BotStep, below: BotStep | None) -> str:
    """The verb a go-next-to serves: its reason, or the step waiting below it."""
    if step.reason == "PutNext":
        return "put next to"
    if step.reason == "Open" or isinstance(below, OpenSubgoal):
        return "open"
    if isinstance(below, PickupSubgoal):
        return "pick up"
    if isinstance(below, DropSubgoal):
        return "drop"
    return "go to"


def _targets(bot: BabyAIBot, step: GoNextToSubgoal) -> list[Obj]:
    """What a go-next-to aims at, the bot's own choice first: the object it heads for, then the
    other seen objects its description fits; for a bare position, whatever lies there."""
    datum = step.datum
    if isinstance(datum, ObjDesc):
        seen = _seen_matches(bot, datum)
        if len(seen) < 2:  # (the bot's own choice costs a search per object: only where there is a choice)
            return seen
        chosen, _ = bot._find_obj_pos(datum, step.reason == "PutNext")
        return list(dict.fromkeys([_obj(chosen), *seen] if chosen is not None else seen))
    if isinstance(datum, WorldObj):
        return [_obj(datum)]
    there = _obj(bot.mission.unwrapped.grid.get(*datum))
    return [there] if there is not None else []


def stack_subgoals(bot: BabyAIBot, env: Any, image: np.ndarray) -> list[Subgoal]:
    """The bot's current step in the subgoal language, as the subgoals that mean it, its own
    first. Where its object is out of view, explore is accepted after it (all a teacher that names
    only what it sees can say there)."""
    stack = bot.stack
    if not stack or stack[-1].is_exploratory():
        return [Subgoal(EXPLORE)]
    top, below = stack[-1], (stack[-2] if len(stack) > 1 else None)
    front = front_object(image)
    if isinstance(top, PickupSubgoal) and front is not None:
        return [Subgoal("pick up", front)]
    if isinstance(top, OpenSubgoal) and front is not None:
        return _looking_beyond([Subgoal("open", front)], env)
    if isinstance(top, CloseSubgoal) and front is not None:
        return [Subgoal("open", front)]
    if isinstance(top, DropSubgoal):  # a put-next-to where the drop lands beside what the mission names
        front = np.asarray(env.unwrapped.front_pos)
        beside = [o for desc in _put_next_targets(env, _obj(env.unwrapped.carrying)) for o in desc.obj_set
                  if o.cur_pos is not None and int(np.abs(np.asarray(o.cur_pos) - front).sum()) == 1]
        return [Subgoal("put next to", t) for t in dict.fromkeys(_obj(o) for o in beside)] or [Subgoal("drop")]
    if isinstance(top, GoNextToSubgoal):
        verb = _verb_for(top, below)
        if verb == "drop":
            return [Subgoal("drop")]
        subgoals = _with_explore([Subgoal(verb, t) for t in _targets(bot, top)], image)
        return (_looking_beyond(subgoals, env) if verb == "open" else subgoals) or [Subgoal(EXPLORE)]
    return [Subgoal(EXPLORE)]


def _seen_matches(bot: BabyAIBot, desc: ObjDesc) -> list[Obj]:
    return list(dict.fromkeys(_obj(o) for o in desc.obj_set if o.cur_pos is not None and bot.vis_mask[tuple(o.cur_pos)]))


def _with_explore(subgoals: list[Subgoal], image: np.ndarray) -> list[Subgoal]:
    """`subgoals`, and explore after them where none of their objects is in view."""
    seen = set(visible_objects(image))
    if subgoals and not any(s.obj in seen for s in subgoals):
        return subgoals + [Subgoal(EXPLORE)]
    return subgoals


def _looking_beyond(subgoals: list[Subgoal], env: Any) -> list[Subgoal]:
    """`subgoals` opening a door, and explore after them where the mission names none of those
    doors: the bot opens such a door only as its explore step (once what it can reach is seen, the
    nearest closed door), and the hands told to explore open the same door. Read as "open" alone,
    a teacher saying explore there was wrong in 0.77 of `GoToObjMazeS4`'s states (docs/results.md),
    where only a teacher that remembered the rooms seen could name the door."""
    named = _named(env)
    if subgoals and Subgoal(EXPLORE) not in subgoals and not any(s.obj in named for s in subgoals):
        return subgoals + [Subgoal(EXPLORE)]
    return subgoals


def accept_alike(bot: BabyAIBot, taken: Any) -> None:
    """Where the agent does the plan's next step on another place or object of the same name than
    the one the bot was heading for (drops elsewhere, opens or picks up another door or key alike),
    the step is done: the subgoal language leaves which of those alike to the hands, and the bot
    would otherwise undo the act (close the door again, pick the object up to drop it on its spot)."""
    stack, actions = bot.stack, bot.mission.unwrapped.actions
    if len(stack) < 2 or not isinstance(stack[-1], GoNextToSubgoal):
        return
    heading, next_step = stack[-1].datum, stack[-2]
    if taken == actions.drop and isinstance(next_step, DropSubgoal):
        done = not isinstance(heading, (ObjDesc, WorldObj))
    elif (taken == actions.toggle and isinstance(next_step, OpenSubgoal)) or (
            taken == actions.pickup and isinstance(next_step, PickupSubgoal)):
        done = bot.prev_fwd_cell is not None and _named_alike(heading, bot.prev_fwd_cell, bot)
    else:
        done = False
    if done:
        stack.pop()  # the step below sees its own action taken, and is done


def _named_alike(heading: Any, faced: WorldObj, bot: BabyAIBot) -> bool:
    """Whether the object faced bears the name of what a go-next-to heads for."""
    if isinstance(heading, ObjDesc):
        return heading.type in (None, faced.type) and heading.color in (None, faced.color)
    target = heading if isinstance(heading, WorldObj) else bot.mission.unwrapped.grid.get(*heading)
    return target is not None and (target.type, target.color) == (faced.type, faced.color)


# ------------------------------------------------------------------ a subgoal teacher acting alone


class _Level:
    """A plain MiniGrid level as the bot's planner reads a BabyAI one: the same level, with rooms
    that hold nothing (the planner asks for the agent's room only to place "on your left")."""

    def __init__(self, env: Any) -> None:
        self._env = env.unwrapped

    @property
    def unwrapped(self) -> "_Level":
        return self

    def room_from_pos(self, *_pos: int) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


class _Planner(BoundedBot):
    """The bot's planner without a plan of its own: it starts with an empty stack (so a level
    without a BabyAI instruction can use it too), and a box it is told to open may open."""

    def __init__(self, env: Any) -> None:  # (BabyAIBot's own reads the instruction and plans it)
        self.mission = env if hasattr(env.unwrapped, "room_from_pos") else _Level(env)
        self.stack = []
        self.vis_mask = np.zeros((env.unwrapped.width, env.unwrapped.height), dtype=bool)
        self.bfs_counter = self.bfs_step_counter = 0
        self.may_open_box = False

    def _check_erroneous_box_opening(self, action: Any) -> None:
        if not self.may_open_box:
            super()._check_erroneous_box_opening(action)


class _ExploreUntilTold(ExploreSubgoal):
    """Explore that stays on the bot's stack until another subgoal replaces it (the bot drops its
    own exploration as soon as its plan no longer needs it)."""

    def is_exploratory(self) -> bool:
        return False


class _Toggle(BotStep):
    """Toggle what is in front (a box: the bot's own open step knows doors only)."""

    def replan_before_action(self) -> Any:
        return self.actions.toggle

    def replan_after_action(self, action_taken: Any) -> None:
        if action_taken is None or action_taken == self.actions.toggle:
            self.bot.stack.pop()
        else:
            self._plan_undo_action(action_taken)


def bot_plan(bot: _Planner, subgoal: Subgoal) -> list[BotStep]:
    """The subgoal as a stack of the bot's own steps (the top is the last)."""
    bot.may_open_box = subgoal.verb == "open" and subgoal.obj is not None and subgoal.obj[0] == _BOX
    if subgoal.verb == EXPLORE:
        return [_ExploreUntilTold(bot)]
    if subgoal.verb == "drop":  # where the bot itself would put it: out of the way
        return [DropSubgoal(bot), GoNextToSubgoal(bot, bot._find_drop_pos())]
    desc = ObjDesc(IDX_TO_OBJECT[subgoal.obj[0]], IDX_TO_COLOR[subgoal.obj[1]])
    desc.find_matching_objs(bot.mission)
    if subgoal.verb == "open":  # of doors alike, one still closed (the planner would close an open one to open it)
        closed = [(o, p) for o, p in zip(desc.obj_set, desc.obj_poss) if not getattr(o, "is_open", False)]
        if closed:
            desc.obj_set, desc.obj_poss = [o for o, _ in closed], [p for _, p in closed]
    if subgoal.verb == "open" and bot.may_open_box:
        return [_Toggle(bot), GoNextToSubgoal(bot, desc)]
    return {"go to": lambda: [GoNextToSubgoal(bot, desc)],
            "pick up": lambda: [PickupSubgoal(bot), GoNextToSubgoal(bot, desc)],
            "put next to": lambda: [DropSubgoal(bot), GoNextToSubgoal(bot, desc, reason="PutNext")],
            "open": lambda: [OpenSubgoal(bot), GoNextToSubgoal(bot, desc, reason="Open")]}[subgoal.verb]()


class SubgoalHands:
    """The BabyAI bot's planner carrying out the subgoals it is told, not its own: how a subgoal
    teacher acts alone. The teacher chooses what to do; the bot only finds the way."""

    def __init__(self) -> None:
        self._bots: dict[int, _Planner] = {}
        self._doing: dict[int, Subgoal | None] = {}

    def act(self, env: Any, subgoal: Subgoal, last_action: str | None) -> str:
        """The action towards `subgoal` in the live `env` (`last_action` None at an episode's start)."""
        key = id(env)
        if last_action is None or key not in self._bots:
            self._bots[key], self._doing[key], taken = _Planner(env), None, None
        else:
            taken = env.actions(FULL_ACTIONS.index(last_action))
        bot = self._bots[key]
        try:
            if subgoal != self._doing[key]:  # a new plan: the action taken served the old one, not this
                bot.stack, self._doing[key], taken = bot_plan(bot, subgoal), subgoal, None
            action = bot.replan(taken)
        except (AssertionError, DisappearedBoxError):  # nothing the planner can do for it here
            del self._bots[key]  # the next step starts a new bot
            return "done"
        if not bot.stack:  # done: the next step follows whatever the teacher says then
            self._doing[key] = None
        return FULL_ACTIONS[int(action)]

"""Missions of several parts: the parts done in an episode leave the choice, so the next part is current.

A mission's clozes read the mission alone, so on "open the red door, then open the blue door"
they name the same door before and after it opens, and the agent never gets to the second part.
No code reads the mission's words to split it: the parts are the objects the teacher's reading
names, in its order of likelihood. What the code knows is the state: a subgoal the teacher
named in this episode (going to an object, opening a door) that the agent has since completed is a
part done, and leaves the choice (`choice.choose`) for the rest of the episode. So the current
part is the likeliest part not done, and which part comes first is the teacher's reading, which
the student's feedback teaches: a decision taken before any part was done is judged on the
mission's clozes, as every decision is; one taken after is judged on none of them, since the same
clozes then stand for a later part (`choice.choose`).

Only going to and opening count: what is picked up may be put down again and needed once more.
Two puttings-down are remembered for the step (`steps`): a key put down before its door opened, which
frees the hands for a thing in the way, until the hands take something again; and any other thing
put down, moved out of the way, for the rest of the episode. So are the doors seen locked (out of
view, such a door's key still comes before other things) and a thing met ahead with such a key in
hand (it is in the way: the key is dropped for it).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from minigrid.core.constants import IDX_TO_OBJECT

from mutualrl.facts import door_states
from mutualrl.locations import Pose
from mutualrl.steps import EpisodeSoFar, served
from mutualrl.subgoals import Obj, Subgoal, carried, front_object, reached

#: the subgoals whose completion is a part done
PART_VERBS = ("go to", "open")


class PartsDone:
    """Per copy of an environment (by index), the subgoals named in its episode, and what the
    episode has done so far (`of`)."""

    def __init__(self) -> None:
        self._named: defaultdict[int, set[Subgoal]] = defaultdict(set)
        self._so_far: defaultdict[int, EpisodeSoFar] = defaultdict(EpisodeSoFar)
        self._held: dict[int, Obj | None] = {}

    def of(self, copy: int) -> EpisodeSoFar:
        """What the copy's episode has done so far (`steps.EpisodeSoFar`)."""
        return self._so_far[copy]

    def started(self, copy: int, pose: Pose) -> None:
        """The copy's agent is at `pose`: its episode's start, where none is noted yet."""
        if self._so_far[copy].start is None:
            self._so_far[copy] = self._so_far[copy]._replace(start=pose)

    def name(self, copy: int, subgoal: Subgoal) -> None:
        """The teacher named `subgoal` for this copy: a part, once completed, if its verb makes one."""
        if subgoal.verb in PART_VERBS and subgoal.obj is not None:
            self._named[copy].add(subgoal)

    def see(self, images: np.ndarray, ended: Sequence[bool]) -> None:
        """After a step: each named subgoal completed in the copy's view is done, and a door opened
        that is in view shut is not (another door of its colour, or shut again: on
        `KeyCorridorS3R1` the door opened while exploring shares its colour with the locked one);
        a door locked in view is remembered; an episode that ended (or a copy that starts a new
        one) starts with none."""
        for i, image in enumerate(images):
            if ended[i]:
                for memory in (self._named, self._so_far, self._held):
                    memory.pop(i, None)
                continue
            so_far, doors = self._so_far[i], door_states(image)
            new = {s for s in self._named[i] - so_far.done if reached(s, image, ())}
            done = so_far.done | new
            shut = {door for door, state in doors.items() if state != "open"}
            if new or shut & {s.obj for s in done if s.verb == "open"}:
                so_far = so_far._replace(done=frozenset(s for s in done if s.verb != "open" or s.obj not in shut))
            locked = {door for door, state in doors.items() if state == "locked"}
            if not locked <= so_far.locked:
                so_far = so_far._replace(locked=so_far.locked | locked)
            self._so_far[i] = self._hands(i, image, doors, so_far)

    def _hands(self, i: int, image: np.ndarray, doors: dict[Obj, str], so_far: EpisodeSoFar) -> EpisodeSoFar:
        """A key that left the hands while its door is still shut is put down, and hands that take
        anything again end what was put down so; anything else that left the hands was moved. A
        thing ahead while such a key is in hand is met, until the hands are emptied."""
        held, before = carried(image), self._held.get(i)
        self._held[i] = held
        if held is not None:
            ahead = front_object(image)
            met = so_far.met
            if (IDX_TO_OBJECT[held[0]] == "key" and ahead is not None and IDX_TO_OBJECT[ahead[0]] != "door"
                    and not served(held, doors, so_far.done)):
                met = met | {ahead}
            return so_far._replace(put_down=frozenset(), met=met)
        so_far = so_far._replace(met=frozenset())
        if before is None:
            return so_far
        if IDX_TO_OBJECT[before[0]] != "key":
            return so_far._replace(moved=so_far.moved | {before})
        if not served(before, doors, so_far.done):
            return so_far._replace(put_down=so_far.put_down | {before})
        return so_far

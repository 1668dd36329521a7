"""The next step: which object to deal with now, asked with the facts of the state.

The clozes of `grounding` read the mission alone, so on a level with doors they name the door to
open while its key still lies on the floor. Where a level has locked doors, the teacher is also
asked about the next step, with the facts that decide it (`facts.state_facts`: what the agent
carries, the doors in view and their states, what else is in view) and the rule that a locked
door needs its key:

    Mission: open the red door.
    You carry nothing. The red door is locked. You see a red key. A locked door opens only with its key.
    So what the agent must deal with now is the {red|...|ball|box|key|door}

then the kind after the colour, as the grounding clozes ask it (`benchmarks/step_forms.py`
measured this form best of those in `FORMS`; docs/results.md). Only there: on `OpenDoor`, whose doors are
only closed, the step's clozes asked at every state named the door the mission means less often
than the mission's own (0.66 of the bot's states against 0.89, 10 held-out episodes). The
questions are keyed by the facts, never by where things lie, so one read serves every state with
the same facts, and feedback on them teaches the step for all of those states.

The object is the model's answer; the verb follows from the object and the hands, as a step of
the bot's plan does: a key is picked up (hands emptied first) and dropped once its door is open,
a closed door opened, a locked one too with its key in hand (without it, the key is the step),
the mission's own objects get the verb the mission is read as (`grounding`); a locked door in view
orders the steps as the bot takes them (its key before other things, then the door, a thing in the
way moved when met). Feedback judges the object only, as it does for the mission's clozes
(`verdicts.judged`): per decision, and where an episode succeeds, at each of its states, on the
object the student dealt with next (`Segments`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Sequence

import numpy as np
from minigrid.core.constants import IDX_TO_OBJECT

from mutualrl import design
from mutualrl.choice import Option, answers_for, choice_weights, subgoal_for
from mutualrl.choice import choose as choose_from
from mutualrl.envs import Situation
from mutualrl.facts import door_of, door_states, key_of, missing_keys, state_facts
from mutualrl.grounding import NEXT, ROLES, add_lead, meaning, mission_questions, name_clozes
from mutualrl.locations import Pose, places_in_view
from mutualrl.reading import Reading
from mutualrl.subgoals import EXPLORE, Obj, Subgoal, carried, front_object, visible_objects

RULE = "A locked door opens only with its key."
#: forms of the question: the rule told after the facts, and the lead of the reply whose next word
#: is the object's colour. Measured zero-shot by `benchmarks/step_forms.py` (docs/results.md): after
#: "get the", in a fifth of `UnlockPickup`'s states the model named something out of view where the
#: bot was to open the locked door, its key in hand; "deal with" suits a door as well as a key.
FORMS = {"deal with now": (RULE, ROLES[NEXT]),
         "next thing to deal with": (RULE, "So the next thing the agent must deal with is the"),
         "handle": (RULE, "So the next thing the agent must handle is the"),
         "get": (RULE, "So the agent must now get the"),
         "go to": (RULE, "So the agent must now go to the"),
         "carried to it": ("A locked door opens only with its key, carried to it.", "So the agent must now go to the"),
         "use": (RULE, "So the agent must now use the")}
#: the form asked (a benchmark sets another)
FORM = "deal with now"
#: where the rule is told: at every state ("always"), only where a locked door is in view ("locked"),
#: or there and where the hands hold a key ("locked or key"). Told at an open door, the rule names
#: the key again where the bot, its key dropped, takes the box. Zero-shot "always" reads more states
#: right (`benchmarks/step_forms.py --rule`); after feedback "locked or key" read more of
#: `UnlockPickup`'s and `UnlockLocal`'s (IQM of three seeds 0.861 and 0.943, against 0.836 and
#: 0.933) and fewer of `KeyCorridorS3R1`'s, below its own zero-shot (0.646 -> 0.632, against 0.657
#: -> 0.676; docs/results.md), and "locked" sent the key in hand to a drop where no door was in view
RULE_TOLD = ("always", "locked", "locked or key")
RULE_WHERE = "always"
for _rule, _lead in FORMS.values():
    add_lead(NEXT, _lead)


class EpisodeSoFar(NamedTuple):
    """What a copy's episode has done that its next step depends on (kept by `sequences.PartsDone`):
    the parts `done`; the keys `put_down` before their doors opened, until the hands take
    something; the other things put down, `moved`; the doors seen `locked`, which the view may
    no longer show; the things `met` ahead, in the way, while a key still to open its door
    was in hand, until the hands are emptied; and the agent's pose at its `start`, from which a
    mission places its object (`locations`)."""

    done: frozenset[Subgoal] = frozenset()
    put_down: frozenset[Obj] = frozenset()
    moved: frozenset[Obj] = frozenset()
    locked: frozenset[Obj] = frozenset()
    met: frozenset[Obj] = frozenset()
    start: Pose | None = None


def step_questions(mission: str, image: np.ndarray) -> tuple[Situation, ...]:
    """The next object's clozes: its colour (a kind there: no colour named), then its kind per colour."""
    rule, lead = FORMS[FORM]
    facts = state_facts(image)
    return tuple(name_clozes(mission, lead, f"{facts} {rule}" if _rule_told(image) else facts))


def _rule_told(image: np.ndarray) -> bool:
    """Whether the rule goes with these facts (`RULE_WHERE`; told at an open door, it names the key)."""
    if RULE_WHERE == "always" or "locked" in door_states(image).values():
        return True
    holding = carried(image)
    return RULE_WHERE == "locked or key" and holding is not None and IDX_TO_OBJECT[holding[0]] == "key"


def state_questions(mission: str, image: np.ndarray, actions: tuple[str, ...], steps: bool) -> tuple[Situation, ...]:
    """Every cloze a subgoal here is chosen from: the mission's, and with `steps` (a level with
    locked doors, `envs.has_locked_doors`) the next step's."""
    own = mission_questions(mission, actions)
    return own + step_questions(mission, image) if steps else own


def step_verb(obj: Obj, image: np.ndarray, verbs: dict[str, float]) -> str:
    """The verb a step on `obj` takes: open a door still shut, pick up a key (empty hands first),
    the mission's likeliest verb word on anything else."""
    kind, holding = IDX_TO_OBJECT[obj[0]], carried(image)
    if kind == "door":
        return "go to" if door_states(image).get(obj) == "open" else "open"
    word = "pick" if kind == "key" else max(verbs, key=verbs.get)
    return "drop" if word == "pick" and holding is not None else subgoal_for(word, obj, holding)[0]


def served(key: Obj | None, doors: dict[Obj, str], done: frozenset[Subgoal] = frozenset()) -> bool:
    """Whether `key` (a key, in hand or in view) has opened its door: the door open in view
    (`doors`: `facts.door_states`), or opened in this episode (`sequences`). In hand, such a key is
    dropped, as the bot does right after it unlocks (asked, the model named the open door or the
    object out of view: on `KeyCorridorS3R1` a taught teacher said go to the door or explore in 37
    of the bot's 296 states, 10 held-out episodes, each one where the bot drops the key); in view,
    it is no step (named with the box out of view, on `UnlockPickup` it was taken again where the
    bot goes on)."""
    if key is None or IDX_TO_OBJECT[key[0]] != "key":
        return False
    return doors.get(door_of(key)) == "open" or Subgoal("open", door_of(key)) in done


def step_weights(reading: Reading, image: np.ndarray,
                 so_far: EpisodeSoFar = EpisodeSoFar()) -> tuple[list[Option], np.ndarray]:
    """The teacher's distribution over the next step: each visible object weighs its name's
    probability as the next object; the likeliest name not in view `explore_ratio` times its own,
    as explore, or as a drop where it is picked up and the hands are full, but for a key that has
    not `served` (that goes on to its door: dropped for the box, on `UnlockPickup` the
    untaught teacher read 0.839 of the bot's states against 0.862, 10 held-out episodes; else the
    agent, turned away from it on the way to where it drops, would be told to explore; any unseen
    name read so, the untaught teacher dropped the key on `UnlockLocal`: 0.60 of the
    bot's states against 0.66, 10 held-out episodes; explored for, the ball moved from the door on
    `BlockedUnlockPickup` was carried on where the bot drops it, in 13 of the bot's 644 states after
    feedback). A locked door's key that the facts told is
    not in view weighs all its probability: named against them, it is meant (a taught teacher read
    "key" in 0.68-0.79 there and still said the door, docs/results.md). The object in hand is not
    a name to look for: a teacher taught "key" where the hands were empty read it with the key in
    hand too, and sent the student exploring beside the key's door. Nor is an open door, unless the
    mission reads "go": nothing is left to do with it (named, a taught teacher said go to it in 16
    of `KeyCorridorS3R1`'s 296 bot states, where the bot took the ball or the key in view), nor a
    key in view that has `served`; in hand, such a key is dropped, whatever is named; nor a thing
    put down in the episode, `moved` (not a key): on `BlockedUnlockPickup` the ball moved from the
    door was named again in 15 of the bot's 644 states, where the bot took the box."""
    word, holding, doors = max(reading.verbs, key=reading.verbs.get), carried(image), door_states(image)
    if served(holding, doors, so_far.done):
        return [Option(Subgoal("drop"))], np.ones(1)
    visible = visible_objects(image)
    passed = [door for door, state in doors.items() if state == "open" and word != "go"]
    passed += [obj for obj in visible if served(obj, doors, so_far.done) or obj in so_far.moved]
    seen = [obj for obj in visible if obj not in passed]
    # (a drop frees the hands for the object named: judged on nothing, as explore)
    options = [Option(Subgoal("drop"), None, None) if verb == "drop" else Option(Subgoal(verb, obj), None, NEXT)
               for obj in seen for verb in [step_verb(obj, image, reading.verbs)]]
    weights = [reading.p(NEXT, obj) for obj in seen]
    looked_for = _keys_first(seen, weights, doors, holding)
    ahead = front_object(image)
    to_its_door = _key_to_its_door_first(seen, weights, doors, holding, so_far.met | ({ahead} if ahead else set()))
    if holding is None:
        _key_before_other_things(seen, weights, doors, so_far)
    in_hand = [holding] if holding is not None else []  # (not a thing to look for)
    unseen = reading.likeliest_unseen(NEXT, seen + in_hand + passed)
    missing = unseen in missing_keys(image)
    key_kept = holding is not None and IDX_TO_OBJECT[holding[0]] == "key"  # (not `served`: it goes to its door)
    away = "drop" if (missing or not key_kept) and step_verb(unseen, image, reading.verbs) == "drop" else EXPLORE
    options.append(Option(Subgoal(away)))
    ratio = 1.0 if missing else design.DESIGN.explore_ratio
    weights.append(ratio * reading.p(NEXT, unseen))
    # (full hands are emptied first to take a key looked for; a key's door is looked for)
    fetch = Subgoal("drop" if holding is not None else EXPLORE)
    for step, weight in ((fetch, looked_for), (Subgoal(EXPLORE), to_its_door)):
        if weight and step == options[-1].subgoal:
            weights[-1] += weight
        elif weight:
            options.append(Option(step))
            weights.append(weight)
    w = np.array(weights)
    return options, w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))


def _key_to_its_door_first(seen: list[Obj], weights: list[float], doors: dict[Obj, str], holding: Obj | None,
                           in_the_way: frozenset[Obj]) -> float:
    """A key in hand still to open its door (not `served`) goes to that door before anything else
    is taken, as the bot takes it: moves the weight of each thing to pick up (in place) to the door
    where it is locked in view, but for the things `in_the_way`, ahead or met ahead since the key
    was taken (`EpisodeSoFar.met`), which the bot drops the key to move (named, the ball before
    the door sent the key to a drop in 73 of `BlockedUnlockPickup`'s 644 bot states, 10 held-out
    episodes, each one where the bot walked on to the door; the untaught teacher read 0.713 of
    them before, 0.792 after; once a thing had been ahead, the bot dropped the key in each of the
    43 states that followed, turning to a free cell). Its door out of view, returns that weight,
    to look for the door."""
    if holding is None or IDX_TO_OBJECT[holding[0]] != "key" or doors.get(door_of(holding)) == "open":
        return 0.0
    door = seen.index(door_of(holding)) if doors.get(door_of(holding)) == "locked" else None
    out = 0.0
    for i, obj in enumerate(seen):
        if IDX_TO_OBJECT[obj[0]] != "door" and obj not in in_the_way:
            if door is None:
                out += weights[i]
            else:
                weights[door] += weights[i]
            weights[i] = 0.0
    return out


def _key_before_other_things(seen: list[Obj], weights: list[float], doors: dict[Obj, str],
                             so_far: EpisodeSoFar) -> None:
    """With empty hands, the key of a locked door, in view, is taken before any other thing, as
    the bot takes it: the door locked in view, or seen locked in the episode and now out of view
    (on `BlockedUnlockPickup`, with such a key and another thing in view and no door, the bot took
    the key in each of 31 states, 10 held-out episodes; where it had not seen the door yet it
    explored). Once put down before its door opened (`EpisodeSoFar.put_down`), to free the hands
    for a thing in the way, the other things come first, until the hands take one. Moves the
    weights in place (on `BlockedUnlockPickup` the ball and the key were read in the other order
    in 57 of the bot's 644 states, 10 held-out episodes, before the rule)."""
    remembered = [door for door in sorted(so_far.locked) if door not in doors]
    for door in [door for door, state in doors.items() if state == "locked"] + remembered:
        key = key_of(door)
        if key not in seen:
            continue
        others = [i for i, obj in enumerate(seen) if IDX_TO_OBJECT[obj[0]] != "door" and obj != key]
        if not others:
            continue
        k = seen.index(key)
        if key in so_far.put_down:
            share = [weights[i] for i in others]
            total = sum(share)
            for i, w in zip(others, share):
                weights[i] += weights[k] * (w / total if total > 0 else 1 / len(others))
            weights[k] = 0.0
        else:
            weights[k] += sum(weights[i] for i in others)
            for i in others:
                weights[i] = 0.0


def _keys_first(seen: list[Obj], weights: list[float], doors: dict[Obj, str], holding: Obj | None) -> float:
    """A locked door opens only with its key in hand: named without it, its key is meant (the bot
    never opens such a door first; the untaught teacher read 0.756 of `UnlockLocal`'s bot states
    before, 0.931 after, 10 held-out episodes). Moves each such door's weight (in place) to its
    key where in view; returns the weight of those out of view, to be looked for."""
    out = 0.0
    for i, obj in enumerate(seen):
        if doors.get(obj) == "locked" and holding != key_of(obj):
            if key_of(obj) in seen:
                weights[seen.index(key_of(obj))] += weights[i]
            else:
                out += weights[i]
            weights[i] = 0.0
    return out


def choose(questions: Sequence[Situation], probs: Sequence[np.ndarray], image: np.ndarray, actions: Sequence[str],
           rng: np.random.Generator | None = None, so_far: EpisodeSoFar = EpisodeSoFar(),
           pose: Pose | None = None) -> tuple[Subgoal, list[int]]:
    """`choice.choose`, from the next step's distribution where the questions ask it, given what
    the episode has done `so_far`; elsewhere with the places of the objects in view from the start
    of the episode, where the agent's `pose` now is given (`locations`)."""
    asked = any(meaning(q)[0] == NEXT for q in questions)
    placing = design.DESIGN.location_prior > 0 and pose is not None and so_far.start is not None
    places = places_in_view(image, pose, so_far.start) if placing else None  # (no place read: no place weighs)
    weigh = partial(step_weights, so_far=so_far) if asked else partial(choice_weights, places=places, done=so_far.done)
    return choose_from(questions, probs, image, actions, rng, weigh, so_far.done)


def step_hindsight(mission: str, image: np.ndarray, obj: Obj) -> tuple[list[Situation], list[int]]:
    """The step's clozes at a state (`image`, before the act) and the answers naming `obj`, the
    object the student itself then dealt with (as `verdicts.hindsight` for the mission's)."""
    questions = step_questions(mission, image)
    answers = answers_for(questions, Option(Subgoal("go to", obj), None, NEXT))
    return [q for q, a in zip(questions, answers) if a >= 0], [a for a in answers if a >= 0]


class Segments:
    """Per copy, the states of its episode, one per distinct set of facts, and the object it dealt
    with next from each (picked up, or the door it opened). Where the episode succeeds, that object
    was the next step at each of them, whatever the teacher said (`SubgoalGuidance`). Judged only at
    the state just before an act, the step's clozes where the student went on searching (a locked
    door in view, its key not) would never see the key named.

    Two acts are no step. The object in hand is not the next thing to deal with where it is held
    (it is used or dropped), so a state holding it waits for the next other act. And a pick-up of
    an object picked up before in the episode, put down again with nothing dealt with since, was
    dithering: its states wait for the next act. Measured on `UnlockPickup` (`mutual`, seed 2, a
    run resumed at 307,200 frames for 20,480): 6 of 10 successes picked the key up two to eight
    times; the verdicts named the key at 648 states that held it (255 with the key in hand beside
    its locked door, where the bot opens it) and at 114 with the door open and the hands empty,
    where the bot takes the box. Without them, the teacher after feedback on `UnlockLocal` read
    0.886 (IQM of three seeds), with them 0.912."""

    def __init__(self, copies: int):
        self._open: list[dict[str, np.ndarray]] = [{} for _ in range(copies)]
        self._closed: list[list[tuple[np.ndarray, Obj]]] = [[] for _ in range(copies)]
        self._picked: list[set[Obj]] = [set() for _ in range(copies)]  # picked up so far this episode
        self._again: list[dict[str, np.ndarray]] = [{} for _ in range(copies)]  # the states a repeated pick-up closed

    def see(self, copy: int, image: np.ndarray) -> None:
        """A state of the copy's episode (the first with its facts since the last act counts)."""
        facts = state_facts(image)
        if facts not in self._open[copy]:
            self._open[copy][facts] = np.array(image, copy=True)

    def dealt(self, copy: int, obj: Obj, picked: bool = False) -> None:
        """The copy dealt with `obj` (`picked` up): the next step of the states since the last act
        that did not hold it."""
        closing = {facts: image for facts, image in self._open[copy].items() if carried(image) != obj}
        self._closed[copy] += [(image, obj) for image in closing.values()]
        self._open[copy] = {facts: image for facts, image in self._open[copy].items() if facts not in closing}
        self._again[copy] = closing if picked and obj in self._picked[copy] else {}
        if picked:
            self._picked[copy].add(obj)

    def dropped(self, copy: int) -> None:
        """The copy put down what it held: a repeated pick-up with nothing dealt with since was no
        step, and its states wait for the next act."""
        undone = self._again[copy]
        if undone:
            del self._closed[copy][-len(undone):]
            self._open[copy] = {**self._open[copy], **undone}
        self._again[copy] = {}

    def ended(self, copy: int) -> list[tuple[np.ndarray, Obj]]:
        """The copy's episode ended: each of its states that an act followed, and that act's object."""
        closed = self._closed[copy]
        self._open[copy], self._closed[copy], self._picked[copy], self._again[copy] = {}, [], set(), {}
        return closed

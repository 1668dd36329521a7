"""The teacher's subgoal in this view from its reading of the mission (`reading`): first the verb,
then a visible object that matches its role, or explore where none does; and the answers a choice
amounts to in each cloze, which is what feedback is given on."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np
from minigrid.core.constants import IDX_TO_OBJECT

from mutualrl import design
from mutualrl.envs import Situation
from mutualrl.grounding import CONTENT_FREE, NEXT, meaning, words_of
from mutualrl.reading import Reading, read, reads_colourless
from mutualrl.subgoals import EXPLORE, Obj, Subgoal, carried, visible_objects


@dataclass(frozen=True)
class Option:
    """One subgoal the teacher may choose, and the answers it amounts to: the verb word and the
    role whose object it is (None for explore)."""

    subgoal: Subgoal
    word: str | None = None
    role: str | None = None


def _role(word: str, carrying: Obj | None) -> str:
    """The role of the object a verb word needs now (`put`: first the object to move)."""
    return word if word != "put" else ("move" if carrying is None else "fixed")


def subgoal_for(word: str, obj: Obj, carrying: Obj | None) -> tuple[str, str]:
    """The verb a subgoal on `obj` takes, and the role whose object it is, for a verb word."""
    role, door = _role(word, carrying), IDX_TO_OBJECT[obj[0]] == "door"
    if word == "put":
        return ("pick up" if carrying is None else "put next to"), role
    if word == "pick" and carrying is None and not door:
        return "pick up", role
    return ("open" if word == "open" and door else "go to"), role


def choice_weights(reading: Reading, image: np.ndarray, places: dict[Obj, frozenset[str]] | None = None,
                   done: frozenset[Subgoal] = frozenset()) -> tuple[list[Option], np.ndarray]:
    """The teacher's distribution over subgoals in this view: first the verb, then the object it
    needs.

    Given a verb word, a visible object weighs its name's probability in the verb's role, and
    explore `explore_ratio` times the likeliest name of that role that no visible object bears;
    these are normalised per verb and weighed by the verb's probability. So the mission's object
    wins where it is in view, explore where it is not, and where the mission names several
    objects alike ("a red object") any one in view wins over the unseen. (Normalised per verb,
    a role the model restates more surely cannot outvote the verb.)

    With the `places` of the visible objects (`locations.places_in_view`), each also weighs how
    likely the mission places its object there or nowhere: "the door on your left" is not the door
    on the right, and where no door in view is on the left, explore wins; explore, whose object's
    places are not known, weighs half of the places read (taken as all of them, missions in other
    words, whose places the model misreads more often, went to explore: `PickupLoc` 0.841 of the
    bot's states against 0.852 in held-out words, `OpenTwoDoors` 0.704 against 0.745; as given,
    `OpenDoor` 0.963 against 0.938, docs/results.md).

    The objects of the parts of the mission `done` in the episode are not looked for: where the
    first part was read far more surely than the second ("open the purple door, then open the
    yellow door": purple 0.64, yellow 0.19), the door opened already and left behind sent the
    teacher exploring beside the second door in view (`OpenTwoDoors`, docs/results.md).

    A reading whose object is in hand is done (`Design.in_hand_done`): going to or picking up the
    box held weighs as that object in view would, and its weight goes to no subgoal. Counted
    unseen, it sent the teacher looking for the box where "move the red box close to the grey
    key", read half as go or pick, meant putting it next to the key."""
    seen, holding = visible_objects(image), carried(image)
    in_hand = [holding] if holding is not None and design.DESIGN.in_hand_done else []
    found = seen + in_hand + [s.obj for s in done if s.obj is not None]
    weights: dict[Option, float] = {Option(Subgoal(EXPLORE)): 0.0}
    for word, pw in reading.verbs.items():
        role = _role(word, holding)
        there = {obj: reading.at(word, places.get(obj, frozenset())) if places else 1.0 for obj in seen}
        given = {Option(Subgoal(subgoal_for(word, obj, holding)[0], obj), word, role): reading.p(role, obj) * there[obj]
                 for obj in seen}
        unseen = reading.at_unseen(word) if places else 1.0
        given[Option(Subgoal(EXPLORE))] = design.DESIGN.explore_ratio * reading.best_unseen(role, found) * unseen
        total = sum(given.values()) + sum(reading.p(role, obj) for obj in in_hand if role != "fixed")
        for option, w in given.items():
            weights[option] = weights.get(option, 0.0) + (pw * w / total if total > 0 else 0.0)
    options, w = list(weights), np.array(list(weights.values()))
    return options, w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))


def answers_for(questions: Sequence[Situation], option: Option) -> list[int]:
    """The answer a choice amounts to in each cloze (-1 where the cloze has no part in it): the
    verb word, and the chosen object's colour and kind in its role. Explore answers none."""
    answers = [-1] * len(questions)
    if option.role is None:
        return answers
    colour, kind = words_of(option.subgoal.obj)
    wanted = {("verb", None, None): option.word, (option.role, "colour", None): colour,
              (option.role, "kind", colour): kind}
    for i, q in enumerate(questions):
        answer = wanted.get(meaning(q)) if q.mission != CONTENT_FREE and not q.untaught else None
        if answer in q.actions:
            answers[i] = q.actions.index(answer)
    return answers


def choose(questions: Sequence[Situation], probs: Sequence[np.ndarray], image: np.ndarray, actions: Sequence[str],
           rng: np.random.Generator | None = None,
           weigh: Callable[[Reading, np.ndarray], tuple[list[Option], np.ndarray]] | None = None,
           done: frozenset[Subgoal] = frozenset()) -> tuple[Subgoal, list[int]]:
    """The teacher's subgoal from its answers (weighed by `weigh`, default `choice_weights` with the
    parts `done`): the most likely (`likeliest`), or with `rng` one drawn from its distribution; and the answer it
    amounts to in each cloze (what feedback is given on). The parts of the mission `done` in this
    episode are not chosen again, and once a part is done the mission's clozes, which then stand
    for a later part, are judged on nothing (`sequences`)."""
    if not questions or not (visible_objects(image) or carried(image)):  # (full hands may have a step: `steps`)
        return Subgoal(EXPLORE), [-1] * len(questions)
    options, weights = (weigh or partial(choice_weights, done=done))(read(questions, probs, actions), image)
    weights = np.where([o.subgoal in done for o in options], 0.0, weights)
    if weights.sum() <= 0:
        return Subgoal(EXPLORE), [-1] * len(questions)
    weights = weights / weights.sum()
    option = options[int(rng.choice(len(options), p=weights)) if rng is not None else likeliest(options, weights)]
    answers = answers_for(questions, option)
    if option.role is not None:
        answers = as_read(questions, answers, probs, option.subgoal.obj)
    return option.subgoal, [-1 if done and meaning(q)[0] != NEXT else a for q, a in zip(questions, answers)]


#: the subgoals that carry out each verb word itself; any other a word's options name is where the
#: verb cannot apply and the object is gone to instead (`subgoal_for`: a door picked up, a box opened)
CARRIES_OUT = {"go": ("go to",), "pick": ("pick up",), "put": ("pick up", "put next to"), "open": ("open",)}


def likeliest(options: Sequence[Option], weights: np.ndarray) -> int:
    """The teacher's most likely choice among weighed options. By subgoal (`Design.by_subgoal`): the
    subgoal whose options weigh most together, and its heaviest option (whose answers feedback
    judges). A verb word's fallback (its object gone to where the verb cannot apply) counts apart
    from the words it would otherwise swell, so that words which cannot apply do not outvote the one
    that does (counted together, `put`'s step with the object in hand lost to going to it:
    `PutNextLocal` in other words 0.726 against 0.913, docs/results.md)."""
    if not design.DESIGN.by_subgoal:
        return int(np.argmax(weights))
    counted = [_counted_as(option) for option in options]
    totals: dict[tuple, float] = {}
    for key, w in zip(counted, weights):
        totals[key] = totals.get(key, 0.0) + float(w)
    best = max(totals, key=totals.__getitem__)
    return max((i for i, key in enumerate(counted) if key == best), key=lambda i: weights[i])


def _counted_as(option: Option) -> tuple:
    """What an option's weight counts towards: its subgoal, or where it is its word's fallback, that word's."""
    fallback = option.word is not None and option.subgoal.verb not in CARRIES_OUT[option.word]
    return (option.subgoal, option.word) if fallback else (option.subgoal,)


def as_read(questions: Sequence[Situation], answers: Sequence[int], probs: Sequence[np.ndarray], obj: Obj) -> list[int]:
    """The answers a choice of `obj` amounts to as the teacher read the mission: in a colour cloze
    whose kinds' answers outweigh its colours' (the mission names no colour), the object's kind
    rather than its colour, so that feedback confirms the reading instead of teaching the mission
    a colour (`Design.colourless`; "ignored" keeps the colour)."""
    if design.DESIGN.colourless == "ignored":
        return list(answers)
    kind = words_of(obj)[1]
    return [q.actions.index(kind) if a >= 0 and meaning(q)[1] == "colour" and kind in q.actions
            and reads_colourless(p) else a for q, a, p in zip(questions, answers, probs)]

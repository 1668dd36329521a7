"""The two objects of `put` read apart: the object to move is not the one to put it next to."""

import numpy as np
import pytest

from mutualrl import channel, design, grounding, locations
from mutualrl.envs import task_actions
from mutualrl.grounding import COLOURS, KINDS, meaning, mission_questions
from mutualrl.reading import Reading

ACTIONS = task_actions("BabyAI-PutNextLocal-v0")
GREY_KEY, BLUE_BOX = ("grey", "key"), ("blue", "box")


def _answers(questions, reads: dict[str, dict[tuple[str, str], float]],
             said: dict[tuple[str, str, str], float] | None = None) -> list[np.ndarray]:
    """Each role's clozes answered so that its names read as `reads[role]` (colour, then kind per
    colour); the clozes read the other way round, the likelihood in `said` (1e-20 where none is
    given); every other cloze, the content-free mission's included, answered uniformly."""
    probs = []
    for q in questions:
        if channel.is_channel(q):
            probs.append(np.array([(said or {}).get(channel.about(q), 1e-20)]))
            continue
        role, asks, colour = meaning(q)
        names = reads.get(role) if q.mission != grounding.CONTENT_FREE else None
        if names is None or asks is None:
            probs.append(np.full(len(q.actions), 1.0 / len(q.actions)))
        elif asks == "colour":
            probs.append(np.array([sum(p for (c, _), p in names.items() if c == a) for a in q.actions]) + 1e-9)
        else:
            kinds = np.array([names.get((colour, k), 0.0) for k in KINDS]) + 1e-9
            probs.append(kinds / kinds.sum())
    return probs


def _likeliest(reading: Reading, role: str) -> tuple[str, str]:
    colour, kind = np.unravel_index(int(np.argmax(reading.names[role])), reading.names[role].shape)
    return COLOURS[colour], KINDS[kind]


@pytest.fixture
def questions():
    return mission_questions("move the grey key close to the blue box", ACTIONS)


def test_the_object_to_move_read_as_the_other_one_yields_to_it_read_apart(questions, monkeypatch):
    """The object to move leans to the blue box (the last named) and the one to put it next to is
    surely the blue box: read apart, the grey key is the one to move; read alone, the blue box."""
    reads = {"move": {BLUE_BOX: 0.55, GREY_KEY: 0.45}, "fixed": {BLUE_BOX: 0.9, GREY_KEY: 0.1}}
    apart = Reading(questions, _answers(questions, reads), ACTIONS)
    assert _likeliest(apart, "move") == GREY_KEY and _likeliest(apart, "fixed") == BLUE_BOX
    monkeypatch.setattr(design, "DESIGN", design.Design(apart=False))
    alone = Reading(questions, _answers(questions, reads), ACTIONS)
    assert _likeliest(alone, "move") == BLUE_BOX


def test_two_roles_sure_of_one_name_keep_their_reads(questions):
    """No pair of different objects is left: each role reads as it was asked (not uniform)."""
    reads = {"move": {BLUE_BOX: 1.0}, "fixed": {BLUE_BOX: 1.0}}
    reading = Reading(questions, _answers(questions, reads), ACTIONS)
    assert _likeliest(reading, "move") == BLUE_BOX and _likeliest(reading, "fixed") == BLUE_BOX
    assert reading.names["move"].max() > 0.99


def test_the_mission_likelier_after_the_object_to_move_in_the_usual_words_names_it(questions, monkeypatch):
    """Read the other way round, the mission is far likelier after "put the grey object ..." and
    "put the key ..." than after any other colour or kind: the grey key is the one to move, where
    the direct read (alone, not apart) leans to the blue box. A flat channel leaves that read."""
    monkeypatch.setattr(design, "DESIGN", design.Design(apart=False))
    reads = {"move": {BLUE_BOX: 0.55, GREY_KEY: 0.45}, "fixed": {BLUE_BOX: 0.9, GREY_KEY: 0.1}}
    said = {("move", "colour", "grey"): 1e-16, ("move", "kind", "key"): 1e-16}
    assert _likeliest(Reading(questions, _answers(questions, reads, said), ACTIONS), "move") == GREY_KEY
    assert _likeliest(Reading(questions, _answers(questions, reads), ACTIONS), "move") == BLUE_BOX
    asked = [channel.about(q) for q in questions if channel.is_channel(q)]
    placed = [w for w in grounding.verb_words(ACTIONS) if w in locations.PLACED_VERBS]
    doors = len(COLOURS) if design.DESIGN.door_channel and "open" in grounding.verb_words(ACTIONS) else 0
    assert len(asked) == len(set(asked)) == len(grounding.verb_words(ACTIONS)) + 2 * (len(COLOURS) + len(KINDS)) + \
        len(locations.PLACES) * len(placed) + doors

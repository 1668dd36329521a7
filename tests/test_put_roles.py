"""The two objects of `put` read apart: the object to move is not the one to put it next to."""

import numpy as np
import pytest

from mutualrl import grounding
from mutualrl.envs import task_actions
from mutualrl.grounding import COLOURS, KINDS, Reading, meaning, mission_questions

ACTIONS = task_actions("BabyAI-PutNextLocal-v0")
GREY_KEY, BLUE_BOX = ("grey", "key"), ("blue", "box")


def _answers(questions, reads: dict[str, dict[tuple[str, str], float]]) -> list[np.ndarray]:
    """Each role's clozes answered so that its names read as `reads[role]` (colour, then kind per
    colour); every other cloze answered uniformly."""
    probs = []
    for q in questions:
        role, asks, colour = meaning(q)
        names = reads.get(role)
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
    monkeypatch.setattr(grounding, "DESIGN", grounding.Design(apart=False))
    alone = Reading(questions, _answers(questions, reads), ACTIONS)
    assert _likeliest(alone, "move") == BLUE_BOX


def test_two_roles_sure_of_one_name_keep_their_reads(questions):
    """No pair of different objects is left: each role reads as it was asked (not uniform)."""
    reads = {"move": {BLUE_BOX: 1.0}, "fixed": {BLUE_BOX: 1.0}}
    reading = Reading(questions, _answers(questions, reads), ACTIONS)
    assert _likeliest(reading, "move") == BLUE_BOX and _likeliest(reading, "fixed") == BLUE_BOX
    assert reading.names["move"].max() > 0.99

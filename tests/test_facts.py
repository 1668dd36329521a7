"""The facts of a state, told in words: what the agent carries, the doors and their states."""

from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from mutualrl.facts import door_states, state_facts
from views import view


def test_facts_tell_what_is_carried_the_doors_states_and_the_rest_in_view():
    image = view(((3, 6), "key", "red", "open"), ((3, 2), "door", "red", "locked"),
                 ((5, 4), "door", "blue", "closed"), ((1, 4), "ball", "green", "open"))
    assert state_facts(image) == ("You carry a red key. The blue door is closed. The red door is locked. "
                                  "You see a green ball.")


def test_empty_hands_and_two_doors_alike_read_as_the_most_closed():
    image = view(((3, 2), "door", "yellow", "open"), ((2, 0), "door", "yellow", "locked"))
    assert door_states(image) == {(OBJECT_TO_IDX["door"], COLOR_TO_IDX["yellow"]): "locked"}
    assert state_facts(image) == "You carry nothing. The yellow door is locked. The yellow key is not in view."


def test_a_locked_doors_key_is_told_missing_only_where_neither_carried_nor_in_view():
    door = ((3, 2), "door", "red", "locked")
    assert "key is not in view" not in state_facts(view(door, ((1, 4), "key", "red", "open")))
    assert "key is not in view" not in state_facts(view(door, ((3, 6), "key", "red", "open")))
    assert state_facts(view(door, ((1, 4), "key", "blue", "open"))) == \
        "You carry nothing. The red door is locked. The red key is not in view. You see a blue key."
    assert "key is not in view" not in state_facts(view(((3, 2), "door", "red", "closed")))

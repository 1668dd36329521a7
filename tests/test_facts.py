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
    assert state_facts(image) == "You carry nothing. The yellow door is locked."

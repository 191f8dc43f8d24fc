"""Helpers of the messages users see (nwb_jedi.errors)."""

from __future__ import annotations


def test_messages_list_the_first_few_choices_and_say_when_there_are_more():
    from nwb_jedi.errors import first_few

    assert first_few(["a", "b"]) == "a, b"
    assert first_few([str(i) for i in range(12)], limit=3) == "0, 1, 2, ..."
    assert first_few([]) == ""


def test_counts_take_their_noun_in_the_right_number():
    from nwb_jedi.errors import counted

    assert counted(1, "neuron") == "1 neuron"
    assert counted(0, "trial") == "0 trials" and counted(61, "neuron") == "61 neurons"

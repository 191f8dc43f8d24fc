"""Helpers of the messages users see (nwb_jedi.errors)."""

from __future__ import annotations


def test_messages_list_the_first_few_choices_and_say_when_there_are_more():
    from nwb_jedi.errors import first_few

    assert first_few(["a", "b"]) == "a, b"
    assert first_few([str(i) for i in range(12)], limit=3) == "0, 1, 2, ..."
    assert first_few([]) == ""

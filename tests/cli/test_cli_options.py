"""Parsing shared by the commands' options."""

from __future__ import annotations

from npcseg.cli.options import comma_list


def test_comma_list_strips_items_and_drops_empty_ones() -> None:
    assert comma_list(" case-000, case-001,,case-002 ,") == ["case-000", "case-001", "case-002"]
    assert comma_list("") == [] and comma_list(" , ") == []
    assert comma_list(None) is None

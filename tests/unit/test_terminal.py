"""deployflow.terminal: what reaches a terminal is one line with nothing that acts on it, and a table fits
the width it is given, its columns in line whatever their values' lengths."""

from __future__ import annotations

import pytest

from deployflow.client.api import _one_line
from deployflow.terminal import clip, fields, table, terminal_text


@pytest.mark.parametrize(("text", "shown"), [
    ("plain words", "plain words"),
    ("\x1b[31mred\x1b[0m", "red"),                                  # colour (CSI)
    ("\x1b[2J\x1b[Hclear", "clear"),                               # clear the screen, move the cursor
    ("a\x1b[1Ab", "ab"),                                           # cursor up: overwrite the line above
    ("\x1b]0;new title\x07ok", "ok"),                             # OSC, ended by BEL: the window's title
    ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),      # OSC 8, ended by ST: a hyperlink
    ("\x9b31mC1", "C1"),                                           # the 8-bit CSI
    ("\x1bPq#0;2;0;0;0\x1b\\sixel", "sixel"),                      # DCS
    ("\x1bcreset", "reset"),                                       # ESC c: reset the terminal
    ("trailing\x1b", "trailing"),
    ("bell\x07 nul\x00 del\x7f", "bell nul del"),
    ("txt\u202egnp.exe", "txtgnp.exe"),                            # a bidi override flips what follows
    ("zero\u200bwidth\u2066", "zerowidth"),
    ("two\nlines\r\tand  spaces", "two lines and spaces"),
    ("naïve café ✓", "naïve café ✓"),
])
def test_terminal_text_leaves_nothing_that_acts_on_a_terminal(text, shown):
    assert terminal_text(text) == shown


def test_an_error_s_detail_from_airflow_is_terminal_text():
    assert _one_line("\x1b[31mledger\x1b[0m\ndown") == "ledger down"  # what _call makes ApiError's detail of


@pytest.mark.parametrize(("text", "width", "shown"), [
    ("short", 10, "short"), ("exactly10!", 10, "exactly10!"), ("eleven char", 10, "eleven ch…"), ("any", None, "any"),
])
def test_clip(text, width, shown):
    assert clip(text, width) == shown


ROWS = [{"name": "a", "why": "x" * 200}, {"name": "bb\x1b[31m", "why": "short"}]


def test_a_table_cuts_its_last_column_to_the_width():
    lines = table(ROWS, ("name", "why"), width=30).splitlines()
    assert lines == ["NAME  WHY", "a     " + "x" * 23 + "…", "bb    short"]
    assert max(map(len, lines)) == 30


def test_the_last_column_keeps_a_least_width_and_a_limit_cuts_its_column():
    lines = table(ROWS, ("name", "why"), width=10, limits={"why": 50}, headers={"why": "REASON"}, indent="  ").splitlines()
    assert lines == ["  NAME  REASON", "  a     " + "x" * 15 + "…", "  bb    short"]
    assert table(ROWS, ("name", "why"), limits={"why": 5}).splitlines()[1] == "a     xxxx…"


def test_right_aligned_columns_end_in_line_with_their_header_whatever_the_values_lengths():
    rows = [{"name": "a-much-longer-name-than-the-header", "count": 7}, {"name": "b", "count": 12345678}]
    assert table(rows, ("name", "count"), right=("count",)).splitlines() == [
        "NAME                                   COUNT",
        "a-much-longer-name-than-the-header         7",
        "b                                   12345678",
    ]


def test_a_right_aligned_last_column_cut_to_the_width_is_no_wider_than_its_cells():
    rows = [{"name": "a", "n": "1" * 40}, {"name": "b", "n": "2"}]
    assert table(rows, ("name", "n"), right=("n",), width=24).splitlines() == [
        "NAME                   N", "a     " + "1" * 17 + "…", "b                      2"]


def test_fields_line_up_their_values_and_show_nothing_as_a_dash():
    assert fields([("service", "shop"), ("a longer key", "\x1b[31mred\x1b[0m"), ("live", None)], indent="  ") == (
        "  service:      shop\n  a longer key: red\n  live:         -")

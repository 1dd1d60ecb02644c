"""Separation of duties at an approval gate, as rules (``deployflow.governance.approvals``): who Airflow is told
may answer, when a gate can never pass, how each answer counts, and free text made literal Markdown. The gate
operator that applies them is tested in test_approval_gate.py."""

from __future__ import annotations

import html

import pytest
from markdown_it import MarkdownIt

from deployflow.catalog.model import Approval
from deployflow.governance.approvals import Count, answerers, literal_markdown, shortfall, tally

TWO_OF_THREE = Approval(required=True, approvers=("alice", "bob", "carol"), min_approvals=2)
ANYONE = Approval(required=True)


@pytest.mark.parametrize(("rule", "requester", "assigned"), [
    (TWO_OF_THREE, "alice", ("bob", "carol")),
    (TWO_OF_THREE, "dave", ("alice", "bob", "carol")),
    (TWO_OF_THREE, None, ("alice", "bob", "carol")),  # a scheduled run: nobody triggered it
    (ANYONE, "alice", ()),  # anyone but alice: Airflow cannot say so, the gate checks it on resume
])
def test_airflow_is_told_the_approvers_but_the_requester(rule, requester, assigned):
    assert answerers(rule, requester) == assigned


@pytest.mark.parametrize(("rule", "requester", "says"), [
    (TWO_OF_THREE, "alice", None),
    (Approval(approvers=("alice", "bob"), min_approvals=2), "alice",
     "alice triggered the run and may not approve it; 1 other approver(s) (bob) cannot make the 2 approval(s) needed"),
    (Approval(approvers=("alice",)), "alice", "0 other approver(s) (none) cannot make the 1 approval(s) needed"),
    (Approval(approvers=("alice", "bob"), min_approvals=2), "ci", None),
    (ANYONE, "alice", None),
])
def test_a_gate_that_could_never_pass_says_why(rule, requester, says):
    found = shortfall(rule, requester)
    assert found == says if says is None else says in found


@pytest.mark.parametrize(("rule", "before", "by", "approves", "count", "after", "says"), [
    (TWO_OF_THREE, [], "ci", True, Count.REFUSED, (), "ci triggered the run and may not answer its approval"),
    (TWO_OF_THREE, [], "ci", False, Count.REFUSED, (), "ci triggered the run"),  # nor reject it
    (ANYONE, [], "ci", True, Count.REFUSED, (), "ci triggered the run"),
    (TWO_OF_THREE, [], "mallory", True, Count.REFUSED, (), "mallory is not one of the approvers (alice, bob, carol)"),
    (TWO_OF_THREE, [], None, True, Count.REFUSED, (), "an answer by no named user"),
    (TWO_OF_THREE, [], "alice", True, Count.WAITING, ("alice",), "1 of 2 approvals (alice)"),
    (TWO_OF_THREE, ["alice"], "alice", True, Count.REFUSED, ("alice",), "alice approved already; 2 different people"),
    (TWO_OF_THREE, ["alice"], "bob", True, Count.APPROVED, ("alice", "bob"), "approved by alice, bob"),
    (TWO_OF_THREE, ["alice"], "carol", False, Count.REJECTED, ("alice",), "rejected by carol"),
    (TWO_OF_THREE, ["alice"], "alice", False, Count.REJECTED, ("alice",), "rejected by alice"),  # a change of mind
    (ANYONE, [], "bob", True, Count.APPROVED, ("bob",), "approved by bob"),
])
def test_each_answer_counts_once_by_its_rules(rule, before, by, approves, count, after, says):
    counted = tally(rule, "ci", before, by=by, approves=approves)
    assert (counted.count, counted.approved_by) == (count, after) and says in counted.reason


@pytest.mark.parametrize("text", [
    "[click](http://evil)", "<img src=x onerror=alert(1)>", "**", "_x_ `code` ~~gone~~", "# not a heading",
    "![pixel](http://evil/p.png)", "&lt;b&gt; &#60;", "1. not a list", "- not a bullet", "a \\ b \\*", "| a | b |",
    "http://evil.example www.evil.example", "two\n\nparagraphs\n# and a heading", "plain words stay plain",
])
def test_free_text_renders_as_written(text):
    markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    page = markdown.renderInline(literal_markdown(text))
    assert "<" not in page  # no tag of its own: a "<" in the text shows as &lt;
    assert html.unescape(page) == " ".join(text.split())  # and the words read as written, on one line


def test_words_without_punctuation_are_left_alone():
    assert literal_markdown("take what staging proved") == "take what staging proved"
    assert literal_markdown("a*b") == "a\\*b"

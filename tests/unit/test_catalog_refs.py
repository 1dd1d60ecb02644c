"""Git ref names by git's own rules: one check (catalog/refs.py) for the catalog and the release request,
and the trigger form's JSON-schema pattern, which must refuse exactly what the check refuses."""

from __future__ import annotations

import re

import pytest

from deployflow.catalog import GIT_REF_PATTERN, check_git_ref, parse_service
from deployflow.catalog.refs import git_ref_problem
from deployflow.errors import ConfigError, shown

GOOD = [
    "main", "HEAD", "v1.2.0", "feature/login-form", "release/2026.01", "user@host", "v1.0+build.7", "a.b/c_d",
    "0123456789abcdef0123456789abcdef01234567",  # a bare SHA-1 commit
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",  # a bare SHA-256 commit
]

BAD = [
    ("", "is empty"),
    ("a" * 201, "is longer than 200 characters"),
    ("a..b", "contains '..'"),
    ("feature//x", "contains '//'"),
    ("main@{1}", "contains '@{'"),
    ("-x", "starts with '-'"),
    ("--upload-pack=evil", "starts with '-'"),
    ("/main", "starts or ends with '/'"),
    ("main/", "starts or ends with '/'"),
    ("main.", "ends with '.'"),
    ("@", "is '@' alone"),
    (".hidden", "has a component starting with '.' ('.hidden')"),
    ("feature/.x", "has a component starting with '.' ('.x')"),
    ("main.lock", "has a component ending in '.lock' ('main.lock')"),
    ("refs/x.lock/y", "has a component ending in '.lock' ('x.lock')"),
    ("main\n", "contains U+000A"),
    ("ma\x00in", "contains U+0000"),
    ("a b", "contains U+0020"),
    ("HEAD~1", "contains '~'"),
    ("HEAD^", "contains '^'"),
    ("a:b", "contains ':'"),
    ("a?", "contains '?'"),
    ("a*", "contains '*'"),
    ("a[b", "contains '['"),
    ("a\\b", "contains '\\\\'"),
    ("a\x7f", "contains U+007F"),
    ("$(touch x)", "contains '$'"),
    ("ma\u202ein", "contains U+202E"),
    ("brünnen", "contains 'ü'"),
]


@pytest.mark.parametrize("ref", GOOD)
def test_a_valid_ref_passes_the_check_and_the_form(ref):
    assert git_ref_problem(ref) is None
    assert check_git_ref(ref, "params.git_ref") == ref
    assert re.search(GIT_REF_PATTERN, ref)  # jsonschema's "pattern" is re.search


@pytest.mark.parametrize(("ref", "problem"), BAD)
def test_each_rule_says_what_is_wrong_and_the_form_refuses_it_too(ref, problem):
    with pytest.raises(ConfigError) as caught:
        check_git_ref(ref, "params.git_ref")
    assert caught.value.path == "params.git_ref"
    assert caught.value.message.startswith(f"{shown(ref)} is not a valid branch, tag or commit name: it {problem}")
    assert not re.search(GIT_REF_PATTERN, ref)


def test_a_ref_that_is_not_text_is_refused():
    with pytest.raises(ConfigError, match="source.default_ref: must be a string"):
        check_git_ref(42, "source.default_ref")


@pytest.mark.parametrize(("document", "path", "problem"), [
    ({"source": {"repo": "/srv/shop", "default_ref": "main\n"}}, "source.default_ref", "contains U+000A"),
    ({"source": {"repo": "/srv/shop", "default_ref": "a..b"}}, "source.default_ref", "contains '..'"),
    ({"nightly": {"cron": "0 2 * * *", "ref": "x.lock"}}, "nightly.ref", "has a component ending in '.lock'"),
    ({"nightly": {"cron": "0 2 * * *", "ref": "-x"}}, "nightly.ref", "starts with '-'"),
])
def test_the_catalog_checks_its_refs_by_the_same_rules(document, path, problem):
    raw = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"dev": {"port": 18101}}, **document}
    with pytest.raises(ConfigError) as caught:
        parse_service(raw)
    assert caught.value.path == path and problem in caught.value.message

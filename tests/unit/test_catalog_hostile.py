"""A hostile catalog file is cheap to refuse: no YAML alias is expanded past a bound, no file is read past its
size limit, no error message quotes an unbounded value. The scheduler's routing policy, the dag-processor and every task
read these files."""

from __future__ import annotations

import re
import tracemalloc

import pytest
import yaml

from deployflow.airflow.operators import PytestSuiteOperator
from deployflow.catalog import load_service, parse_service
from deployflow.catalog.claims import PortClaims
from deployflow.catalog.loading import MAX_FILE_BYTES, read_yaml
from deployflow.deployer import __main__ as deployer
from deployflow.errors import ConfigError

# Nine levels of nine aliases: 548 bytes that stand for 9**9 (387 million) strings to whatever walks them.
BOMB = "\n".join(['name: shop', 'source: {repo: /srv/shop}', 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
                  *(f"{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
                    for p, n in zip("abcdefgh", "bcdefghi")),
                  'environments: {dev: {port: 18001, strategy: *i}}']) + "\n"
GOOD = "name: shop\nsource: {repo: /srv/shop}\nenvironments: {dev: {port: 18001}}\n"


def test_the_alias_bomb_is_refused_before_anything_expands_it(tmp_path):
    assert len(BOMB.encode()) < 600
    (tmp_path / "shop.yaml").write_text(BOMB)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match=r"shop.yaml: \(file\): stands for more than 20,000 values once its YAML "
                                              r"aliases are expanded"):
            load_service(tmp_path / "shop.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"{peak:,} bytes to refuse {len(BOMB)} bytes"


def test_a_few_aliases_as_a_yaml_dumper_writes_them_still_load(tmp_path):
    """PyYAML's own dumper writes an anchor and an alias for a value it meets twice (a generated catalog has them)."""
    shared = {"batch_size": 1}
    doc = {"name": "shop", "source": {"repo": "/srv/shop"},
           "environments": {"dev": {"port": 18001, "rolling": shared}, "staging": {"port": 18002, "rolling": shared}}}
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(doc))
    assert "&id001" in (tmp_path / "shop.yaml").read_text()
    service = load_service(tmp_path / "shop.yaml")
    assert service.environments["staging"].rolling == service.environments["dev"].rolling


@pytest.mark.parametrize(("text", "what"), [
    ("name: shop\nenvironments: {dev: *missing}\n", "is not valid YAML"),  # an alias with no anchor
    ("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "stands for more than 20,000 values"),
])
def test_an_alias_that_names_nothing_or_too_much_is_refused(text, what):
    with pytest.raises(ConfigError, match=r"\(file\): " + what):
        read_yaml(text)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed():
    big = GOOD + "#" * MAX_FILE_BYTES + "\n"
    with pytest.raises(ConfigError, match=rf"\(file\): is {len(big):,} bytes; a catalog file is at most {MAX_FILE_BYTES:,}"):
        read_yaml(big)
    assert read_yaml(GOOD)["name"] == "shop"


@pytest.mark.parametrize("field", ["name", "source.default_ref", "environments.dev.strategy"])
def test_an_error_quotes_at_most_a_bounded_part_of_a_value(tmp_path, field):
    long = "x" * 20_000
    doc = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"dev": {"port": 18001}}}
    *parents, last = field.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[last] = long
    with pytest.raises(ConfigError) as raised:
        parse_service(doc)
    message = str(raised.value)
    assert message.startswith(field) and len(message) < 600, message
    assert "(20,002 characters)" in message


def test_the_deployer_refuses_an_alias_in_the_entry_it_is_given_by_environment(monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_SERVICE_YAML", BOMB)
    with pytest.raises(ConfigError, match=r"\$DEPLOYFLOW_SERVICE_YAML: \(file\): stands for more than 20,000 values"):
        deployer._service(None)


def test_the_front_port_scan_passes_over_a_hostile_file(tmp_path):
    (tmp_path / "shop.yaml").write_text(BOMB.replace("port: 18001", "port: 18002"))
    (tmp_path / "cart.yaml").write_text(GOOD.replace("shop", "cart"))
    (tmp_path / "till.yaml").write_text(GOOD.replace("shop", "till"))
    shared = PortClaims().scan(sorted(tmp_path.glob("*.yaml")))
    assert set(shared) == {"till"}, "the two good files' clash is seen (the later one refused); the hostile file claims nothing"


def shop_with(path: str, value: object) -> dict:
    """The smallest good catalog document, with ``value`` at the dotted ``path`` (``[0]``: in a one-item list)."""
    doc = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"dev": {"port": 18001}}}
    node: dict = doc
    *parents, last = path.split(".")
    for key in parents:
        if key.endswith("[0]"):
            node[key[:-3]] = [{}]
            node = node[key[:-3]][0]
        else:
            node = node.setdefault(key, {})
    node[last] = value
    return doc


@pytest.mark.parametrize(("path", "value", "marker"), [
    ("tests.coverage_source", "{{ conn.deployflow_ledger.password }}", "{{"),
    ("description", "{% for c in conn %}{% endfor %}", "{%"),
    ("source.default_ref", "main{# hidden #}", "{#"),
    ("environments.dev.analysis.metrics[0].query", "up{{selector}} + {{ var.value.key }}", "{{"),
])
def test_a_template_anywhere_in_a_catalog_file_is_refused_naming_the_field(path, value, marker):
    with pytest.raises(ConfigError, match=rf"^{re.escape(path)}: .* contains '{re.escape(marker)}': a catalog value is "
                                          "data, never a template"):
        parse_service(shop_with(path, value))


def test_an_analysis_query_keeps_its_own_placeholders_beside_promql_braces():
    query = "sum(rate(http_requests_total{{selector}}[{window}]))"
    doc = shop_with("environments.dev.analysis.metrics[0].query", query)
    doc["environments"]["dev"]["analysis"]["metrics"][0].update(name="errors_total", kind="errors")
    assert query in [m.query for m in parse_service(doc).environments["dev"].analysis.metrics]


@pytest.mark.parametrize("value", ["app; rm -rf /", "app\n--cov=/", "-x", "a b"])
def test_coverage_source_is_a_package_or_directory(value):
    with pytest.raises(ConfigError, match=r"^tests\.coverage_source: .* is not valid; a package or directory to measure"):
        parse_service(shop_with("tests.coverage_source", value))


def test_the_suite_command_is_never_rendered_as_a_template():
    suite = PytestSuiteOperator(task_id="unit", suite="unit", coverage_source="{{ 7 * 7 }}", coverage_dir="/tmp/{{ 6 * 7 }}",
                                image="img:{{ 2 + 2 }}")
    suite.render_template_fields({})
    assert "--cov={{ 7 * 7 }}" in suite.command  # the catalog's value, as written
    assert (suite.image, suite.mounts[0]["Source"]) == ("img:4", "/tmp/42")  # the platform's own fields still render


@pytest.mark.parametrize(("where", "value", "error"), [
    ("description", "release \u202eppa", "description: 'release \\u202eppa' is not valid; must be one line of visible text"),
    ("owner", "team\nINFO fake log line", "owner: 'team\\nINFO fake log line' is not valid; must be one line"),
    ("build.args", {"A B": "x"}, "build.args.A B: is not a valid build-arg name"),
    ("build.args", {"TOKEN": "a\nb"}, "build.args.TOKEN: 'a\\nb' is not valid; must be one line"),
])
def test_free_text_fields_have_a_pattern(where, value, error):
    with pytest.raises(ConfigError) as refused:
        parse_service(shop_with(where, value))
    assert error in str(refused.value)

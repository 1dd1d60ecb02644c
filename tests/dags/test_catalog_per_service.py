"""One bad catalog file takes out only its own service's DAG (issue 14, item 4).

The catalog bundle writes one DAG file per catalog file; a DagBag (the dag-processor's and the workers'
loader) fills from them in a fresh interpreter (tests/dags/test_integrity.py's probe).
"""

from __future__ import annotations

import json
import os
import time
import subprocess
import sys
from pathlib import Path
from unittest import mock

import yaml

from deployflow.airflow.catalog_bundle import MARK, PORTS_CACHE, CatalogDagBundle, write_dag_files
from deployflow.catalog.claims import PortClaims
from tests.dags.test_integrity import assert_one_dag_or_error_per_catalog_file, import_in_subprocess

ROOT = Path(__file__).resolve().parents[2]


def service(name: str, dev_port: int, **prod) -> dict:
    """A small service: dev on ``dev_port``, prod on the next unless ``prod`` says otherwise."""
    return {"name": name, "source": {"repo": f"/srv/{name}"},
            "environments": {"dev": {"port": dev_port}, "prod": {"port": dev_port + 1, **prod}}}


def write(catalog: Path, doc: dict) -> Path:
    path = catalog / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_bad_file_fails_its_own_dag_only_naming_its_file_and_field(tmp_path):
    write(tmp_path, service("shop", 18900))
    write(tmp_path, service("cart", 18910))
    bad = write(tmp_path, service("pay", 18920, strategy="bluegreen"))
    greedy = write(tmp_path, service("till", 18930, config={"secrets": {"DB": {"connection": "billing_db"}}}))
    result = import_in_subprocess(tmp_path)
    assert sorted(result["dags"]) == ["release_cart", "release_shop"]
    assert sorted(result["errors"]) == ["release_pay.py", "release_till.py"]
    error = result["errors"]["release_pay.py"]
    assert f"{bad.resolve()}: environments.prod.strategy: 'bluegreen' is not valid" in error
    assert "'rolling', 'canary', 'blue-green'" in error
    # A file naming what its service is not granted is refused by the dag-processor the same way (tests/grants.yaml).
    assert (f"{greedy.resolve()}: environments.prod.config.secrets.DB.connection: names the connection 'billing_db', "
            "which till is not granted") in result["errors"]["release_till.py"]
    assert_one_dag_or_error_per_catalog_file(tmp_path, result)


def test_invalid_yaml_fails_its_own_dag_only(tmp_path):
    write(tmp_path, service("shop", 18900))
    (tmp_path / "cart.yaml").write_text("name: [unclosed\n")
    result = import_in_subprocess(tmp_path)
    assert sorted(result["dags"]) == ["release_shop"]
    assert f"{(tmp_path / 'cart.yaml').resolve()}: (file): is not valid YAML" in result["errors"]["release_cart.py"]
    assert_one_dag_or_error_per_catalog_file(tmp_path, result)


def test_a_file_named_as_no_service_may_be_still_gets_its_dag_file_and_error(tmp_path):
    write(tmp_path, service("shop", 18900))
    write(tmp_path, service("Cart Page", 18910))
    result = import_in_subprocess(tmp_path)
    assert sorted(result["dags"]) == ["release_shop"]
    assert "name: 'Cart Page' is not valid" in result["errors"]["release_Cart_Page.py"]


def test_a_port_two_files_claim_fails_only_the_file_that_came_later(tmp_path):
    write(tmp_path, service("shop", 18900))
    write(tmp_path, service("pay", 18920))
    cart = write(tmp_path, service("cart", 18910, port=18901))  # a new team's file takes shop's prod port
    os.utime(cart, ns=(time.time_ns() + 10**9,) * 2)  # and came later, whatever the clock's resolution
    result = import_in_subprocess(tmp_path)
    assert sorted(result["dags"]) == ["release_pay", "release_shop"], "the file that had the port keeps its DAG"
    shop, cart = (tmp_path / "shop.yaml").resolve(), (tmp_path / "cart.yaml").resolve()
    assert (f"{cart}: environments.prod.port: 18901 is also the front port of shop/prod ({shop}, the first to claim "
            "it); each front port belongs to one service's environment" in result["errors"]["release_cart.py"])
    assert_one_dag_or_error_per_catalog_file(tmp_path, result)


def test_the_first_claim_is_kept_when_the_older_file_is_edited_later(tmp_path):
    shop = write(tmp_path, service("shop", 18900))
    cart = write(tmp_path, service("cart", 18910, port=18901))
    os.utime(cart, ns=(shop.stat().st_mtime_ns + 10**9,) * 2)
    claims = PortClaims(tmp_path / PORTS_CACHE)
    assert list(claims.scan([shop, cart])) == ["cart"]
    write(tmp_path, service("shop", 18900) | {"description": "edited"})  # now the newer file on disk
    os.utime(shop, ns=(cart.stat().st_mtime_ns + 10**9,) * 2)
    assert list(PortClaims(tmp_path / PORTS_CACHE).scan([shop, cart])) == ["cart"], "recorded, not re-guessed"


def test_a_new_file_gets_its_dag_file_a_removed_one_loses_it_and_the_rest_are_not_rewritten(tmp_path):
    catalog, dags = tmp_path / "catalog", tmp_path / "dags"
    catalog.mkdir()
    write(catalog, service("shop", 18900))
    write(catalog, service("cart", 18910))
    bundle = CatalogDagBundle(name="catalog", path=str(dags), catalog=str(catalog))
    bundle.initialize()
    shop = dags / "release_shop.py"
    before = shop.stat().st_mtime_ns
    (dags / "mine.py").write_text("# not the bundle's: never removed\n")
    write(catalog, service("pay", 18920))
    (catalog / "cart.yaml").unlink()
    bundle.refresh()
    assert sorted(p.name for p in dags.glob("*.py")) == ["mine.py", "release_pay.py", "release_shop.py"]
    assert shop.stat().st_mtime_ns == before  # unchanged text: not rewritten, so not re-queued for it
    assert shop.read_text().startswith(MARK)
    assert f"service_release_dag({str((catalog / 'shop.yaml').resolve())!r}, shared_ports={{}})" in shop.read_text()


def test_an_edited_catalog_file_rewrites_its_dag_file_only(tmp_path):
    catalog, dags = tmp_path / "catalog", tmp_path / "dags"
    catalog.mkdir()
    write(catalog, service("shop", 18900))
    write(catalog, service("cart", 18910))
    write_dag_files(catalog, dags)
    texts = {p.name: p.read_text() for p in dags.glob("*.py")}
    write(catalog, service("cart", 18910, strategy="canary"))
    write_dag_files(catalog, dags)
    assert sorted(p.name for p in dags.glob("*.py") if p.read_text() != texts[p.name]) == ["release_cart.py"]


def test_a_clash_appearing_rewrites_the_two_files_concerned_only(tmp_path):
    catalog, dags = tmp_path / "catalog", tmp_path / "dags"
    catalog.mkdir()
    for i, doc in enumerate((service("shop", 18900), service("cart", 18910), service("pay", 18920))):
        os.utime(write(catalog, doc), ns=(10**18 + i * 10**9,) * 2)  # first appearances one second apart
    write_dag_files(catalog, dags)
    texts = {p.name: p.read_text() for p in dags.glob("*.py")}
    write(catalog, service("cart", 18910, port=18901))
    write_dag_files(catalog, dags)
    changed = sorted(p.name for p in dags.glob("*.py") if p.read_text() != texts[p.name])
    assert changed == ["release_cart.py"], "shop had the port first: its DAG file stays as it was"


def test_a_missing_catalog_directory_is_an_import_error_naming_it_and_no_dag_file_is_removed(tmp_path):
    (tmp_path / "catalog").mkdir()
    write(tmp_path / "catalog", service("shop", 18900))
    bundle = CatalogDagBundle(name="catalog", path=str(tmp_path / "dags"), catalog=str(tmp_path / "catalog"))
    bundle.initialize()
    bundle.catalog = tmp_path / "nowhere"
    bundle.refresh()
    assert sorted(p.name for p in (tmp_path / "dags").glob("*.py")) == ["catalog_error.py", "release_shop.py"]
    assert f"the catalog directory {tmp_path / 'nowhere'} does not exist" in (tmp_path / "dags" / "catalog_error.py").read_text()
    bundle.catalog = tmp_path / "catalog"
    bundle.refresh()
    assert [p.name for p in (tmp_path / "dags").glob("*.py")] == ["release_shop.py"]


def test_a_missing_catalog_directory_shows_in_airflow_as_an_import_error(tmp_path):
    result = import_in_subprocess(tmp_path / "nowhere")
    assert result["dags"] == {}
    assert f"(catalog): the catalog directory {tmp_path / 'nowhere'} does not exist (set DEPLOYFLOW_CATALOG)" in (
        result["errors"]["catalog_error.py"])


def test_the_port_claims_of_unchanged_files_are_not_read_again_even_by_another_process(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    files = [write(catalog, service("shop", 18900)), write(catalog, service("cart", 18900, port=18950))]
    os.utime(files[1], ns=(files[0].stat().st_mtime_ns + 10**9,) * 2)
    cache = tmp_path / PORTS_CACHE
    first = PortClaims(cache).scan(files)
    assert first == {"cart": {"dev": [f"shop/dev ({files[0]}, the first to claim it)"]}}
    assert json.loads(cache.read_text())  # what a worker's scan starts from
    with mock.patch("deployflow.catalog.claims.read_yaml", side_effect=AssertionError("read again")):
        assert PortClaims(cache).scan(files) == first
    write(catalog, service("cart", 18930))  # a changed file is read again
    assert PortClaims(cache).scan(files) == {}


def test_airflow_cfg_gives_every_process_the_catalog_bundle_in_its_own_home():
    """The dag-processor and each worker build their bundles from this configuration (DagBundlesManager)."""
    from airflow.configuration import conf

    bundles = {b["name"]: b for b in conf.getjson("dag_processor", "dag_bundle_config_list")}
    assert sorted(bundles) == ["catalog", "dags-folder"]
    assert bundles["catalog"]["classpath"] == "deployflow.airflow.catalog_bundle.CatalogDagBundle"
    assert bundles["catalog"]["kwargs"]["path"] == f"{os.environ['AIRFLOW_HOME']}/catalog_dags"


# What a worker does before it runs a task (airflow/sdk/execution_time/task_runner.py parse()): the bundle
# from airflow.cfg, initialize(), then the task's DAG file by its path relative to the bundle.
WORKER = r"""
import json, os, sys
from pathlib import Path
from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import BundleDagBag
bundle = DagBundlesManager().get_bundle(name="catalog", version=None)
bundle.initialize()
bag = BundleDagBag(dag_folder=os.fspath(Path(bundle.path, sys.argv[1])), safe_mode=False, load_op_links=False,
                   bundle_path=bundle.path, bundle_name="catalog")
print(json.dumps({"path": str(bundle.path), "dags": sorted(bag.dag_ids), "errors": list(bag.import_errors)}))
"""


def test_a_worker_on_a_fresh_host_writes_and_finds_the_dag_file_of_its_task(tmp_path):
    """A new worker home (another host) has no DAG file yet: the bundle's initialize() writes them."""
    home = tmp_path / "worker-home"
    done = subprocess.run([sys.executable, "-c", WORKER, "release_sample-app.py"], capture_output=True, text=True, check=True,
                          env={**os.environ, "AIRFLOW_HOME": str(home), "DEPLOYFLOW_CATALOG": str(ROOT / "include" / "services")})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"path": str(home / "catalog_dags"), "dags": ["release_sample-app"], "errors": []}


def test_a_file_past_the_import_timeout_is_its_own_import_error_never_a_silent_gap(tmp_path):
    """Where a catalog is too large or slow for its settings, each DAG file that runs out of
    ``dagbag_import_timeout`` is an import error naming itself (the UI, ``/api/v2/importErrors``): never DAGs gone
    with nothing shown, as one file past the dag-processor's timeout was."""
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for index, name in enumerate(("shop", "cart", "blog")):
        write(catalog, service(name, 18900 + 10 * index))
    result = import_in_subprocess(catalog, env={"AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "0.001"})
    assert result["files"] == ["release_blog.py", "release_cart.py", "release_shop.py"]
    assert result["dags"] == {}
    for file, error in result["errors"].items():
        assert "DagBag import timeout for " in error and error.split("DagBag import timeout for ", 1)[1].split(" ")[0].endswith(file)
    assert sorted(result["errors"]) == result["files"]


def test_a_task_s_process_writes_the_dag_files_but_only_the_dag_processor_warms_up(tmp_path, monkeypatch):
    """A task parses its own DAG file only: warming (building and serializing a DAG) there cost every task
    about 2 s on a busy machine."""
    import types

    from deployflow.airflow import catalog_bundle

    (tmp_path / "catalog").mkdir()
    write(tmp_path / "catalog", service("shop", 18900))
    warmed = []
    monkeypatch.setattr(catalog_bundle, "warm", lambda files: warmed.append(sorted(p.name for p in files)))
    bundle = CatalogDagBundle(name="catalog", path=str(tmp_path / "dags"), catalog=str(tmp_path / "catalog"))
    bundle.initialize()  # the dag-processor: no task runner talking to a supervisor
    assert warmed == [["release_shop.py"]]
    monkeypatch.setitem(sys.modules, "airflow.sdk.execution_time.task_runner", types.SimpleNamespace(SUPERVISOR_COMMS=object()))
    (tmp_path / "dags" / "release_shop.py").unlink()
    CatalogDagBundle(name="catalog", path=str(tmp_path / "dags"), catalog=str(tmp_path / "catalog")).initialize()
    assert (tmp_path / "dags" / "release_shop.py").is_file()  # the task's host gets its DAG file
    assert warmed == [["release_shop.py"]]  # and no second DAG is built

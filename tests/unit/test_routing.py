"""The cluster policy's routing: the deploy steps of an environment with a docker_host go to its worker's queue."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from deployflow.airflow.routing import CatalogFiles, deploy_queue, route
from deployflow.catalog import parse_service
from tests.unit.test_catalog import GOOD

SHOP = copy.deepcopy(GOOD)
SHOP["environments"]["staging"]["docker_host"] = {"connection": "docker_stage", "queue": "stage-host"}
SHOP["environments"]["prod"]["docker_host"] = "docker_prod"
SERVICES = {"shop": parse_service(SHOP)}
NIGHTLY = {**copy.deepcopy(SHOP), "name": "nightly", "nightly": {"cron": "0 2 * * *", "environment": "staging"}}
SERVICES["nightly"] = parse_service(NIGHTLY)


def ti(task_id: str, dag_id: str = "release_shop", queue: str = "default") -> SimpleNamespace:
    return SimpleNamespace(dag_id=dag_id, task_id=task_id, queue=queue)


@pytest.mark.parametrize(("dag_id", "task_id", "conf", "queue"), [
    ("release_shop", "prepare", {"environment": "staging"}, "stage-host"),
    ("release_shop", "health", {"environment": "staging"}, "stage-host"),
    ("release_shop", "shift", {"environment": "staging"}, "stage-host"),
    ("release_shop", "analysis", {"environment": "staging"}, "stage-host"),
    ("release_shop", "load", {"environment": "staging"}, "stage-host"),
    ("release_shop", "promote", {"environment": "staging"}, "stage-host"),
    ("release_shop", "rollback", {"environment": "staging"}, "stage-host"),
    ("release_shop", "record", {"environment": "staging"}, "stage-host"),
    ("release_shop", "prepare", {"environment": "prod"}, "docker_prod"),  # the queue defaults to the connection id
    # Build, tests and the rest stay on the default queue and the local engine.
    ("release_shop", "resolve", {"environment": "staging"}, None),
    ("release_shop", "build", {"environment": "staging"}, None),
    ("release_shop", "test.unit", {"environment": "staging"}, None),
    ("release_shop", "approve_deploy", {"environment": "staging"}, None),
    # An environment without a docker_host, or none the service has, or none at all: unchanged.
    ("release_shop", "prepare", {"environment": "dev"}, None),
    ("release_shop", "prepare", {"environment": "qa"}, None),
    ("release_shop", "prepare", {"environment": ["staging"]}, None),
    ("release_shop", "prepare", {}, None),
    ("release_shop", "prepare", None, None),
    # A scheduled run (empty conf) releases the nightly environment; a conf names another.
    ("release_nightly", "prepare", {}, "stage-host"),
    ("release_nightly", "prepare", {"environment": None}, "stage-host"),
    ("release_nightly", "prepare", {"environment": "dev"}, None),
    ("release_nightly", "prepare", {"environment": "prod"}, "docker_prod"),
    # Not a release DAG, or a service the catalog does not have.
    ("nightly_report", "prepare", {"environment": "staging"}, None),
    ("release_unknown", "prepare", {"environment": "staging"}, None),
])
def test_the_deploy_steps_of_an_environment_with_a_docker_host_get_its_queue(dag_id, task_id, conf, queue):
    assert deploy_queue(dag_id, task_id, conf, SERVICES.get) == queue
    instance = ti(task_id, dag_id)
    route(instance, SimpleNamespace(conf=conf), SERVICES.get)
    assert instance.queue == (queue or "default")


def test_without_a_run_the_instance_keeps_its_queue():
    instance = ti("prepare")
    route(instance, None, SERVICES.get)  # early construction: the hook runs again once the run is known
    assert instance.queue == "default"


def test_a_failing_lookup_leaves_the_instance_unchanged(caplog):
    def broken(name):
        raise RuntimeError("disk on fire")

    instance = ti("prepare")
    with caplog.at_level(logging.WARNING, logger="deployflow.airflow.routing"):
        route(instance, SimpleNamespace(conf={"environment": "staging"}), broken)
    assert instance.queue == "default"
    assert "release_shop.prepare keeps its queue: disk on fire" in caplog.text


def write(directory: Path, doc: dict) -> Path:
    path = directory / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_catalog_files_are_read_again_only_when_they_change(tmp_path, monkeypatch):
    path = write(tmp_path, SHOP)
    files = CatalogFiles(lambda: tmp_path)
    loads = []
    import deployflow.catalog as catalog

    real = catalog.load_service
    monkeypatch.setattr(catalog, "load_service", lambda p: loads.append(p) or real(p))
    assert files("shop").environments["staging"].docker_host.queue == "stage-host"
    assert files("shop") is files("shop")
    assert loads == [path]  # unchanged: parsed once
    moved = copy.deepcopy(SHOP)
    moved["environments"]["staging"]["docker_host"] = {"connection": "docker_stage", "queue": "stage-2"}
    write(tmp_path, moved)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a later mtime, whatever the clock
    assert files("shop").environments["staging"].docker_host.queue == "stage-2"
    assert len(loads) == 2


def test_a_broken_or_missing_catalog_file_leaves_the_instance_unchanged(tmp_path, caplog):
    (tmp_path / "shop.yaml").write_text("name: shop\nenvironments: [\n")
    files = CatalogFiles(lambda: tmp_path)
    instance = ti("prepare")
    with caplog.at_level(logging.WARNING, logger="deployflow.airflow.routing"):
        route(instance, SimpleNamespace(conf={"environment": "staging"}), files)
    assert instance.queue == "default"
    assert "shop.yaml does not load, its tasks keep their queue" in caplog.text
    route(instance, SimpleNamespace(conf={"environment": "staging"}), CatalogFiles(lambda: tmp_path / "gone"))
    assert instance.queue == "default"


def test_the_policy_reads_the_catalog_of_the_environment(tmp_path, monkeypatch):
    write(tmp_path, SHOP)
    monkeypatch.setenv("DEPLOYFLOW_CATALOG", str(tmp_path))
    instance = ti("shift")
    route(instance, SimpleNamespace(conf={"environment": "staging"}), CatalogFiles())
    assert instance.queue == "stage-host"

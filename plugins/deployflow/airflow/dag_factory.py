"""One release DAG per catalog entry: ``release_<service>``, each from its own DAG file.

Built at DAG-file import from the service's YAML alone: no network, no Docker,
no git. The catalog DAG bundle (``catalog_bundle.py``) writes one small DAG file
per catalog file, which calls ``service_release_dag``; a bad catalog file raises
ConfigError there, which Airflow shows as that DAG file's import error, naming
the catalog file, the field and the valid values, while every other service's
DAG file imports as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, BaseOperator, CronTriggerTimetable, Param, TriggerRule

from deployflow.factory import implementation
from deployflow.airflow.approval import ReleaseApprovalOperator
from deployflow.airflow.load import AnalysisLoadOperator
from deployflow.airflow.record import ReleaseRecordOperator, remember_failure
from deployflow.airflow.health_check import HealthCheckSensor
from deployflow.airflow.sensors import CanaryAnalysisSensor
from deployflow.airflow.operators import ImageBuildOperator
from deployflow.airflow.resolve import ResolveReleaseOperator
from deployflow.airflow.suite_tasks import suite_tasks
from deployflow.airflow.runs import in_a_task
from deployflow.airflow.task_ids import (
    ANALYSIS,
    APPROVE_DEPLOY,
    APPROVE_PROMOTE,
    BUILD,
    HEALTH,
    LOAD,
    PREPARE,
    PROMOTE,
    RECORD,
    RESOLVE,
    ROLLBACK,
    SHIFT,
    release_dag_id,
)
from deployflow.catalog import Service, catalog_dir, load_catalog, load_service
from deployflow.catalog.claims import check_shared_ports
from deployflow.release import param_schema


def _xcom(task_id: str) -> str:
    """The Jinja expression of what a task of the run returned (None before it ran)."""
    return f"ti.xcom_pull(task_ids='{task_id}')"


def _requested(field: str) -> str:
    """A template of one field of the release request ('' when resolve has not pushed it)."""
    return "{{ (" + _xcom(RESOLVE) + " or {}).get('" + field + "', '') }}"


# A promotion takes the artifact an earlier environment promoted (resolve found it in the ledger) where a
# build takes its own: the commit it checked out (in its XCom as soon as checked out) and the image it built.
_ARTIFACT = "(" + _xcom(RESOLVE) + " or {}).get('artifact')"
VERSION = "{{ (" + _ARTIFACT + " or " + _xcom(BUILD) + " or {}).get('short_sha', '') }}"
# Deploy by digest when the image was pushed: what runs is exactly what was tested.
# (Empty when the build never finished, its XCom the checkout's alone: the rollback task renders this too, then skips.)
DEPLOY_IMAGE = (
    "{% set b = " + _ARTIFACT + " or " + _xcom(BUILD) + " or {} %}"
    "{{ b.get('ref', '') }}{{ '@' ~ b['digest'] if b.get('digest') else '' }}"
)
DAGRUN_TIMEOUT = timedelta(minutes=30)  # a release's own work; an approval gate's wait comes on top


def service_release_dag(service_file: str | Path, *, shared_ports: Mapping[str, Sequence[str]] | None = None) -> DAG:
    """The release DAG of one catalog file: what each DAG file the catalog bundle writes calls.

    :param service_file: the service's catalog file.
    :param shared_ports: the environments whose front port another catalog file claims too, with who
        (``deployflow.catalog.claims``): the bundle's scan of the whole catalog, the one rule across files.
    """
    path = Path(service_file)
    # The dag-processor refuses a file that names what its service is not granted (an import error naming the
    # field); a task's process leaves that to its task, which checks the grants as they are now where it reads
    # what they grant (deployflow.airflow.grants), so a grant withdrawn since fails resolve with its own words.
    service = load_service(path, check_grants=not in_a_task())
    check_shared_ports({e.name: e.port for e in service.environments.values() if e.port is not None},
                       shared_ports or {}, source=str(path))
    return release_dag(service, path)


def release_dags(catalog: Path | None = None, *, params_per_task: bool = False) -> dict[str, DAG]:
    """Every service's release DAG, by dag_id, from one DAG file: the layout before the catalog bundle, where
    one bad file fails them all. Kept for scripts/bench_parse.py, which measures it against the bundle's."""
    directory = catalog or catalog_dir()
    dags = [release_dag(service, directory / f"{service.name}.yaml", params_per_task=params_per_task)
            for service in load_catalog(directory).values()]
    return {dag.dag_id: dag for dag in dags}


def release_dag(service: Service, service_file: Path, *, params_per_task: bool = False) -> DAG:
    """The release DAG of ``service``.

    :param params_per_task: give the DAG its params before its tasks exist, as Airflow's idiom does, so
        that every task holds a deep copy which serialization validates against its schema again, three
        times per param and task (ParamsDict.__eq__ and __repr__): about 90 % of the parse. False (the default)
        sets them once the tasks exist: the trigger form and its check (HTTP 400 on a bad conf) read the
        DAG's params, and a task's context merges the DAG's params under its own, so nothing else changes.
        True is kept for scripts/bench_parse.py's before/after figures.
    """
    # Airflow checks a trigger's conf against these before a run exists (HTTP 400 otherwise); a param
    # without "default" (the environment, unless there is a nightly schedule) must be given.
    params = {name: Param(**spec) for name, spec in param_schema(service).items()}

    with DAG(
        dag_id=release_dag_id(service.name),
        description=service.description or f"Release {service.name}",
        # A newly deployed DAG waits for the next nightly slot instead of releasing
        # at once for the last one: no start_date, and run_immediately=timedelta(0)
        # (False still runs a slot less than a tenth of the period old).
        schedule=(
            CronTriggerTimetable(service.nightly.cron, timezone="UTC", run_immediately=timedelta(0))
            if service.nightly else None
        ),
        catchup=False,
        params=params if params_per_task else None,
        tags=["deployflow", "release", f"service:{service.name}"],
        default_args={"owner": service.owner or "deployflow", "retries": 1, "retry_delay": timedelta(seconds=10)},
        dagrun_timeout=DAGRUN_TIMEOUT + timedelta(seconds=_longest_approval_s(service)),
        # Releases of a service to different environments run at once; resolve's lock keeps two releases
        # to one environment apart (the second waits for the first, in reschedule mode, holding no slot).
        max_active_runs=MAX_ACTIVE_RUNS,
        render_template_as_native_obj=False,
        doc_md=__doc__,
    ) as dag:
        # Resolve takes the environment's lock too (resolve.py): a release waiting behind another shows as resolve up
        # for reschedule, holding no worker slot, the holder in its log.
        resolve = ResolveReleaseOperator(
            task_id=RESOLVE, service=service, retries=3, on_failure_callback=remember_failure,
            timeout=DAGRUN_TIMEOUT.total_seconds() + _longest_approval_s(service),
        )
        # Build checks the ref out first, then builds: one task process where checkout and build were two (issue 24).
        # A failed build or suite is deterministic: a retry only delays the verdict (the git step retries itself).
        build = ImageBuildOperator(task_id=BUILD, service=service, retries=0, execution_timeout=timedelta(seconds=service.build.timeout_s),
                                   on_failure_callback=remember_failure)
        tested = suite_tasks(service)
        # Waits only where the environment asks, or where the release overrides a freeze. After a promotion's
        # skipped build and tests (none failed) it still runs: none_failed_min_one_success.
        approve = ReleaseApprovalOperator(
            task_id=APPROVE_DEPLOY, service=service, position="deploy", retries=0,
            trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        )
        deploy = _deploy_tasks(service, service_file, approve)
        resolve >> build >> tested
        tested >> approve >> deploy[PREPARE]
        # Resolve skips a gate that asks for nothing before it would start (skips.py): prepare then follows the
        # tests, or resolve where an artifact skipped the build (none failed, one succeeded).
        resolve >> approve
        [resolve, tested] >> deploy[PREPARE]
    if not params_per_task:
        dag.params = params  # attrs runs the same converter and validator (a schedule needs valid defaults)
    return dag


MAX_ACTIVE_RUNS = 8  # per service: the environments' releases, and those waiting for an environment's lock


def _longest_approval_s(service: Service) -> int:
    """The longest an approval gate of the service may wait (a freeze override waits as long as the gate)."""
    return max(env.approval.timeout_s for env in service.environments.values())


def _deploy_tasks(service: Service, service_file: Path, approve: BaseOperator) -> dict[str, object]:
    """prepare -> health -> shift -> analysis -> [approval] -> promote, a rollback when any of them fails
    (or a gate rejects), and the record."""
    common = {
        "service": service, "service_file": str(service_file), "environment_name": _requested("environment"),
        "version": VERSION, "image_ref": DEPLOY_IMAGE, "strategy": _requested("strategy"),
    }
    deployer = _deployer_class(service)
    # Every step converges when retried, so a killed deployer is retried; a step
    # that failed on its own (exit 1: health, exit 2: input) is not, and shift
    # and promote have already put traffic back on the old version by then.
    prepare = deployer(task_id=PREPARE, step="prepare", retries=1, on_failure_callback=remember_failure,
                       trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, **common)
    # The waits' own verdicts (unhealthy, timed out, analysis failed) raise AirflowFailException, which is never
    # retried. Their retries are for what kills a wait from outside: a lost worker, and Airflow 3.3's
    # resume-after-defer race (apache/airflow#72716: the executor's stale "success" of the deferring exit,
    # drained once the resumed try already runs, fails the task; seen here on a busy machine, mostly on a
    # health trigger that fires at once). A retried wait probes or judges again from the start.
    health = HealthCheckSensor(
        task_id=HEALTH, urls="{{ " + _xcom(PREPARE) + "['instances'] }}", service=service,
        environment_name=_requested("environment"), retries=2, retry_delay=timedelta(seconds=2),
    )
    shift = deployer(task_id=SHIFT, step="shift", retries=1, **common)
    # Canary analysis judges the analysed step (it skips for other strategies):
    # passing goes on to promote, failing to rollback.
    # The analysis defers once per interval, so the race above has a chance at every interval: more retries.
    analysis = CanaryAnalysisSensor(
        task_id=ANALYSIS, service=service, environment_name=_requested("environment"), retries=3,
        retry_delay=timedelta(seconds=2),
    )
    load = AnalysisLoadOperator(task_id=LOAD, service=service, environment_name=_requested("environment"), retries=0)
    promote = deployer(
        task_id=PROMOTE, step="promote", retries=1, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, **common,
    )
    rollback = deployer(task_id=ROLLBACK, step="rollback", retries=2, trigger_rule=TriggerRule.ONE_FAILED, **common)
    record = ReleaseRecordOperator(task_id=RECORD, service=service, retries=0, trigger_rule=TriggerRule.ALL_DONE,
                                   tidy=deployer.remove_finished)
    prepare >> health >> shift >> [analysis, load]
    watched = [prepare, health, shift, analysis, promote, approve]
    if any(env.approval.required and env.approval.before == "promote" for env in service.environments.values()):
        gate = ReleaseApprovalOperator(
            task_id=APPROVE_PROMOTE, service=service, position="promote", retries=0,
            trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        )
        [shift, analysis] >> gate >> promote
        [shift, analysis] >> promote  # and after shift alone where resolve skipped the gate (skips.py)
        watched.append(gate)
    else:
        [shift, analysis] >> promote
    promote >> record
    watched >> rollback >> record
    load >> record
    return {PREPARE: prepare, ROLLBACK: rollback, RECORD: record}


# The operator that runs a platform's deployer steps, by the platform's name (``platforms/factory.py`` names the
# same platforms); imported on first use: the Kubernetes provider adds most of a second to every DAG file import.
DEPLOYER_OPERATORS = {
    "docker": "deployflow.airflow.deployer_operator:DeployerOperator",
    "kubernetes": "deployflow.airflow.kubernetes_deploy:KubernetesDeployerOperator",
}


def _deployer_class(service: Service) -> type[BaseOperator]:
    """The deployer steps run in a container next to Airflow (docker) or in a pod of the environment's namespace."""
    return implementation("deployer operator", service.platform, DEPLOYER_OPERATORS)

"""Trigger and follow releases through Airflow's REST API (v2), as CI does.

    python -m deployflow.client --url http://127.0.0.1:8080 --user admin \\
        --password-file .airflow/simple_auth_manager_passwords.json \\
        release sample-app --environment dev --git-ref main --reason "CI build 42"

Every failure is one line on stderr (never a traceback) and one of these exit codes:

    0  the release succeeded
    1  the release failed (the run ended failed; the failing tasks' reasons are printed)
    2  refused or bad input: Airflow refused the trigger (HTTP 400, 404, 409, 422: a bad param, an
       unknown DAG), or an argument is wrong (a malformed --url; argparse's own usage errors)
    3  the password file is missing, unreadable, not JSON, or has no password for --user
    4  Airflow refused the login or a call (HTTP 401 or 403: wrong password, expired token)
    5  Airflow cannot be reached: connection refused, host not found, or no answer in --http-timeout
    6  Airflow's answer is not what its API gives: not JSON, an unexpected shape, another HTTP error
    7  the run did not finish within --timeout (it goes on in Airflow)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


from deployflow.client.api import (
    AirflowClient,
    ApiError,
    BadInput,
    ClientError,
    PasswordUnreadable,
    failure_reason,
    run_seconds,
    timings,
)


def read_password(path: Path, user: str) -> str:
    """The simple auth manager's password file is JSON: ``{"admin": "..."}``. A failure never quotes the file."""
    try:
        passwords = json.loads(path.read_text())
    except FileNotFoundError:
        raise PasswordUnreadable(f"password file {path} does not exist (Airflow writes it at first start)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordUnreadable(f"password file {path} cannot be read: {type(exc).__name__}: {exc.strerror if isinstance(exc, OSError) else 'not text'}") from None
    except ValueError:
        raise PasswordUnreadable(f"password file {path} is not JSON") from None
    if not isinstance(passwords, dict) or not isinstance(passwords.get(user), str):
        raise PasswordUnreadable(f"password file {path} has no password for user {user!r}")
    return passwords[user]


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; else :class:`BadInput`."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise BadInput(f"--url {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"--url {url!r} is not valid; give Airflow's address as http(s)://host:port")
    return url


def _release(args: argparse.Namespace) -> int:
    client = AirflowClient(check_url(args.url), timeout=args.http_timeout)
    client.login(args.user, args.password or read_password(Path(args.password_file), args.user))
    dag_id = f"release_{args.service}"
    conf = {"environment": args.environment, "git_ref": args.git_ref, "strategy": args.strategy, "reason": args.reason}
    conf = {k: v for k, v in conf.items() if v is not None}
    try:
        run = client.trigger(dag_id, conf)
    except ApiError as exc:
        if exc.status not in (400, 404, 409, 422):
            raise  # a login refused (4) or Airflow failing (6), not a refused release
        print(f"release refused: {exc.detail}", file=sys.stderr)
        return 2
    run_id = run["dag_run_id"]
    print(f"triggered {dag_id} run {run_id} with {json.dumps(conf)}")
    started = time.monotonic()

    def progress(task_id: str, state: str) -> None:
        print(f"  [{time.monotonic() - started:6.1f}s] {task_id:<24} {state}", flush=True)

    run = client.wait(dag_id, run_id, timeout=args.timeout, on_change=progress)
    tis = client.task_instances(dag_id, run_id)
    print(f"\n{dag_id} {run_id}: {run['state'].upper()} in {run_seconds(run) or 0:.1f} s")
    print(f"  {'task':<24} {'state':<16} seconds")
    for t in timings(tis):
        print(f"  {t.task_id:<24} {t.state or '-':<16} {'' if t.seconds is None else f'{t.seconds:.1f}'}")
    try:
        live = client.xcom(dag_id, run_id, "record", key="live")
    except ApiError:
        live = None
    if live:
        print(f"\nlive in {live['environment']} at {live['url']}:")
        for colour, members in live["sets"].items():
            print(f"  {colour:<6} {', '.join(members['versions'])}: {members['traffic_percent']} % of traffic, "
                  f"{len(members['instances'])} instance(s)")
    for ti in tis:
        if ti.get("state") == "failed":
            entries = client.task_log(dag_id, run_id, ti["task_id"], ti.get("try_number") or 1)
            print(f"\n  {ti['task_id']} failed: {failure_reason(entries) or '(see the task log)'}")
    return 0 if run["state"] == "success" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployflow.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", help="prefer --password-file: a password here shows in the process list")
    parser.add_argument("--password-file", default=".airflow/simple_auth_manager_passwords.json")
    parser.add_argument("--http-timeout", type=float, default=30, help="seconds to wait for each answer of Airflow (exit 5 after)")
    sub = parser.add_subparsers(dest="command", required=True)
    release = sub.add_parser("release", help="trigger a release and follow it to the end")
    release.add_argument("service")
    release.add_argument("--environment", default=None)
    release.add_argument("--git-ref", default=None)
    release.add_argument("--strategy", default=None)
    release.add_argument("--reason", default=None)
    release.add_argument("--timeout", type=float, default=1800, help="seconds to follow the run (exit 7 after)")
    args = parser.parse_args(argv)
    try:
        return _release(args)
    except ClientError as exc:
        print(f"deployflow.client: {exc}", file=sys.stderr)
        return exc.exit_code

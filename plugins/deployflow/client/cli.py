"""Releases through Airflow's REST API (v2), for people at a terminal and for CI: trigger and follow one, answer
its approval gate, abort or promote one in flight, freeze and unfreeze environments; and what is live where, and
what was released (the Releases view's JSON, served by Airflow's API server behind the same sign-in).

    python -m deployflow.client --url http://127.0.0.1:8080 --user admin \\
        --password-file .airflow/simple_auth_manager_passwords.json \\
        release sample-app --environment dev --git-ref main --reason "CI build 42"
    python -m deployflow.client ... rollback sample-app --environment prod --to previous --reason "errors after 1a2b3c4"
    python -m deployflow.client ... approve sample-app --environment prod --reason "CAB-1234"
    python -m deployflow.client ... abort sample-app --environment staging --reason "wrong config"
    python -m deployflow.client ... promote sample-app --environment staging --reason "metrics look fine"
    python -m deployflow.client ... freeze --environment prod --reason "database failover" --until 2026-12-03T08:00:00Z
    python -m deployflow.client ... status [sample-app]
    python -m deployflow.client ... history sample-app --environment prod --limit 20

Each command prints a table, or with ``--json`` one JSON document. Every failure is one line on stderr (never a
traceback) and an exit code of exit_codes.py (``--help`` lists them): 0 done, 1 the release failed, 2 refused or
bad input, 3 to 6 the password file, the login, Airflow unreachable or answering oddly, 7 timed out, 8 nothing to
act on, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from deployflow.client import exit_codes
from deployflow.client.api import AirflowClient, BadInput, ClientError, PasswordUnreadable, UnexpectedAnswer
from deployflow.client.freezes import freeze, unfreeze
from deployflow.client.gates import approve, reject
from deployflow.client.release import release
from deployflow.client.steering import abort, promote
from deployflow.client.status import register as register_status


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


def connect(args: argparse.Namespace) -> AirflowClient:
    """A client of ``--url``, logged in as ``--user``."""
    client = AirflowClient(check_url(args.url), timeout=args.http_timeout)
    client.login(args.user, args.password or read_password(Path(args.password_file), args.user))
    return client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployflow.client", description=__doc__.split("\n\n")[0],
                                     epilog=exit_codes.table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", help="prefer --password-file: a password here shows in the process list")
    parser.add_argument("--password-file", default=".airflow/simple_auth_manager_passwords.json")
    parser.add_argument("--http-timeout", type=float, default=30, help="seconds to wait for each answer of Airflow (exit 5 after)")
    sub = parser.add_subparsers(dest="name", required=True)
    scripts = argparse.ArgumentParser(add_help=False)
    scripts.add_argument("--json", action="store_true", help="print one JSON document instead of a table (for scripts)")
    release_parser = sub.add_parser("release", parents=[scripts], help="trigger a release and follow it to the end")
    release_parser.add_argument("service")
    release_parser.add_argument("--environment", default=None)
    release_parser.add_argument("--git-ref", default=None)
    release_parser.add_argument("--strategy", default=None, help="default: the environment's in the catalog")
    release_parser.add_argument("--reason", default=None)
    release_parser.add_argument("--promote-from", default=None, metavar="ENVIRONMENT",
                                help="release the image and tests this environment promoted, unbuilt")
    release_parser.add_argument("--freeze-override", default=None, metavar="REASON",
                                help="release into a freeze window anyway, for this reason (the release then waits for an approval)")
    release_parser.add_argument("--force", action="store_const", const=True, default=None,
                                help="build, test and deploy even if this commit and configuration are already live")
    release_parser.add_argument("--timeout", type=float, default=None,
                                help="seconds to follow the run (exit 7 after); default: the DAG's run timeout, which counts "
                                     "its longest approval gate, and 60 s to start")
    release_parser.set_defaults(handler=release)
    back = sub.add_parser("rollback", parents=[scripts], help="put back an earlier release of SERVICE in an environment, "
                                                               "unbuilt, and follow it to the end")
    back.add_argument("service")
    back.add_argument("--environment", required=True)
    back.add_argument("--to", dest="rollback_to", default="previous", metavar="VERSION",
                      help="'previous' (default: the release before the live one) or a commit the environment promoted")
    back.add_argument("--strategy", default=None, help="default: the environment's; blue-green for a fast switch")
    back.add_argument("--reason", default=None)
    back.add_argument("--timeout", type=float, default=None, help="seconds to follow the run (exit 7 after)")
    back.set_defaults(handler=release, git_ref=None, promote_from=None, freeze_override=None)
    for name, handler in (("approve", approve), ("reject", reject)):
        gate = sub.add_parser(name, parents=[scripts], help=f"{name} the gate waiting in a release of SERVICE to an environment")
        gate.add_argument("service")
        gate.add_argument("--environment", required=True)
        gate.add_argument("--run", default=None, metavar="RUN_ID", help="this run's gate (default: the newest run's that waits)")
        gate.add_argument("--reason", default=None, help="why: the gate's comment, in the ledger and told to the channels")
        gate.set_defaults(handler=handler)
    for name, handler, what, why, timeout in (
            ("abort", abort, "stop the release of SERVICE in flight in an environment: traffic back to the version that "
             "was live, the release rolled back", 'in the ledger as "aborted by <user>: <reason>"', 300),
            ("promote", promote, "promote the canary of SERVICE in flight in an environment now: no pause between its "
             "remaining steps (after a passed analysis)", "in the promote step's log and Airflow's note", 900)):
        steer = sub.add_parser(name, parents=[scripts], help=what)
        steer.add_argument("service")
        steer.add_argument("--environment", required=True)
        steer.add_argument("--run", default=None, metavar="RUN_ID", help="this run (default: the newest in flight there)")
        steer.add_argument("--reason", default=None, help=f"why: {why}")
        steer.add_argument("--no-wait", dest="wait", action="store_false", help="do not follow the run to its end")
        steer.add_argument("--timeout", type=float, default=timeout, help="seconds to follow the run (exit 7 after)")
        steer.set_defaults(handler=handler)
    hold = sub.add_parser("freeze", parents=[scripts], help="refuse every service's releases to environments (an incident)")
    where = hold.add_mutually_exclusive_group(required=True)
    where.add_argument("--environment", action="append", help="an environment to freeze (again for more)")
    where.add_argument("--all-environments", action="store_true", help="freeze every environment")
    hold.add_argument("--reason", required=True, help="why: every refused release says it")
    hold.add_argument("--until", default=None, metavar="ISO_TIME",
                      help="when it ends by itself, with its zone (2026-12-03T08:00:00Z); default: when unfrozen")
    hold.add_argument("--name", default=None, help="what refusals call it (default: freeze-<UTC time>)")
    hold.add_argument("--replace", action="store_true", help="replace a freeze that is set")
    hold.set_defaults(handler=freeze)
    lift = sub.add_parser("unfreeze", parents=[scripts], help="lift the freeze, or its hold on some environments")
    lift.add_argument("--environment", action="append", help="lift it here only (again for more); default: everywhere")
    lift.set_defaults(handler=unfreeze)
    register_status(sub, scripts)  # status [SERVICE], history SERVICE (client/status.py)
    args = parser.parse_args(argv)
    try:
        return args.handler(args, lambda: connect(args))
    except ClientError as exc:
        print(f"deployflow.client: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyError, TypeError, AttributeError) as exc:  # an answer of another shape than Airflow's API gives
        print(f"deployflow.client: Airflow's answer is not what its API gives ({type(exc).__name__}: {exc})", file=sys.stderr)
        return UnexpectedAnswer.exit_code
    except KeyboardInterrupt:
        print("deployflow.client: interrupted (what was triggered goes on in Airflow)", file=sys.stderr)
        return 130

"""The Celery setup's two servers from Debian: PostgreSQL (Airflow's metadata and Celery's results) and Redis
(the broker), each in its own directory, on 127.0.0.1 only, with generated passwords in 0600 files.

PostgreSQL is a cluster of its own (initdb and pg_ctl found by deployflow.ledger.postgres, as the ledger's tests
start one), run as the postgres user when this runs as root (it refuses root). Two roles, each owning one
database: ``airflow`` (the metadata) and ``celery`` (the results backend), so that a worker, which needs only
the results, never holds the metadata's password. Redis requires a password (``requirepass``) kept in its
0600 configuration file, never on its command line.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from deployflow.ledger.postgres import postgres_bin
from deployflow.stack.processes import say, start_process, stop_process
from deployflow.stack.secrets import PRIVATE_UMASK, private_dir

POSTGRES_ROLES = ("airflow", "celery")  # each owns the database of its name (celery: the results backend)


@dataclass(frozen=True)
class Servers:
    """Where the servers listen, and the directory of their secrets' files."""

    postgres_port: int
    redis_port: int
    secrets: Path

    def password(self, name: str) -> str:
        return (self.secrets / name).read_text().strip()

    def metadata_url(self) -> str:
        return f"postgresql+psycopg://airflow:{self.password('postgres-airflow')}@127.0.0.1:{self.postgres_port}/airflow"

    def results_url(self) -> str:
        return f"db+postgresql+psycopg://celery:{self.password('postgres-celery')}@127.0.0.1:{self.postgres_port}/celery"

    def broker_url(self) -> str:
        return f"redis://:{self.password('redis')}@127.0.0.1:{self.redis_port}/0"


def generated(path: Path) -> str:
    """The secret in ``path``, generated once (URL-safe: it goes into connection URLs), 0600."""
    if not path.exists():
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def pg_bin(name: str) -> str:
    try:
        return str(postgres_bin(name))
    except FileNotFoundError as exc:
        raise SystemExit(f"[celery] {exc}") from None


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_postgres(command), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"[celery] {' '.join(command)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


def postgres_up(top: Path, port: int, secrets_dir: Path) -> None:
    """The cluster in ``top`` on 127.0.0.1:``port``, its roles and databases; idempotent."""
    top.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(top, "postgres")  # the server's user owns its directory (its socket is there too)
    data = top / "data"
    superuser = top / "superuser-password"  # the server's user reads it (initdb --pwfile): its own file
    if not (data / "PG_VERSION").exists():
        _run(["sh", "-c", f"umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' > {shlex.quote(str(superuser))}"])
        _run([pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--auth-host=scram-sha-256",
              "--auth-local=peer", f"--pwfile={superuser}"])
    if subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(data), "status"]), capture_output=True).returncode:
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {top}"
        _run([pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(top / "log"), "-w", "start"])
    say(f"PostgreSQL on 127.0.0.1:{port} (data {data})")
    _roles(port, superuser.read_text().strip(), secrets_dir)


def _roles(port: int, superuser_password: str, secrets_dir: Path) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=superuser_password,
                         dbname="postgres", autocommit=True) as conn:
        for role in POSTGRES_ROLES:
            password = generated(secrets_dir / f"postgres-{role}")
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(role), sql.Identifier(role)))


def postgres_down(top: Path) -> None:
    data = top / "data"
    if (data / "PG_VERSION").exists():
        subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        say("stopped PostgreSQL")


REDIS_CONFIG = """\
# Written by deployflow.stack.celery_services: the Celery broker, on 127.0.0.1 only, with a password.
bind 127.0.0.1
port {port}
protected-mode yes
requirepass {password}
dir {dir}
daemonize no
save ""
appendonly no
"""


def redis_up(top: Path, port: int, secrets_dir: Path) -> None:
    """redis-server from its 0600 configuration in ``top`` (the password is there, not in argv)."""
    server = shutil.which("redis-server")
    if not server:
        raise SystemExit("[celery] redis-server is not installed (apt-get install redis-server)")
    private_dir(top)
    config = top / "redis.conf"
    with os.fdopen(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(REDIS_CONFIG.format(port=port, password=generated(secrets_dir / "redis"), dir=top))
    start_process(top, "redis", [server, str(config)], {"PATH": os.environ.get("PATH", "")})
    _wait_redis(port, secrets_dir)
    say(f"Redis on 127.0.0.1:{port}")


def _wait_redis(port: int, secrets_dir: Path, timeout: float = 30) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=(secrets_dir / "redis").read_text().strip())
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.RedisError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"[celery] Redis did not answer on 127.0.0.1:{port} within {timeout:.0f} s ({exc})") from None
            time.sleep(0.3)


def redis_down(top: Path) -> None:
    stop_process(top, "redis", grace=10)


def servers_up(top: Path, postgres_port: int, redis_port: int) -> Servers:
    """Both servers under ``top``: 0711 (the postgres user passes through to its own 0700 directory), every
    other directory in it 0700."""
    os.umask(PRIVATE_UMASK)
    top.mkdir(parents=True, exist_ok=True)
    top.chmod(0o711)
    secrets_dir = private_dir(top / "secrets")
    postgres_up(top / "postgres", postgres_port, secrets_dir)
    redis_up(top / "redis", redis_port, secrets_dir)
    return Servers(postgres_port, redis_port, secrets_dir)

"""The local stack's own secrets: the JWT signing key, the Fernet key and the admin password, each in a
0600 file of AIRFLOW_HOME, and which Airflow process may read which (``SECRETS_OF``); the registry's
credentials, one 0600 file for the whole host, and the htpasswd file the registry checks them with; the
permissions that keep the home, its database, logs and the deployer's state to their user.

Each Airflow process gets, through an ``AIRFLOW__..._CMD`` variable, a way to read only the secrets it
needs, never a value in its environment (children inherit it).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import stat
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from deployflow.pipeline.registry import REGISTRY_USER, RegistryCredentials

PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
PRIVATE_UMASK = 0o077  # of every Airflow process: what they create is their user's only


@dataclass(frozen=True)
class StackSecret:
    """One secret of the stack: an Airflow option marked sensitive (so ``_CMD`` works for it), kept in a
    0600 file of AIRFLOW_HOME, generated once."""

    section: str
    key: str
    file: str
    make: Callable[[], str]

    @property
    def variable(self) -> str:
        return f"AIRFLOW__{self.section.upper()}__{self.key.upper()}"

    def names(self) -> set[str]:
        """Every environment variable through which Airflow would read it (value, command, secrets backend)."""
        return {self.variable, f"{self.variable}_CMD", f"{self.variable}_SECRET"}


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


JWT_SECRET = StackSecret("api_auth", "jwt_secret", "jwt_secret", lambda: secrets.token_urlsafe(48))
FERNET_KEY = StackSecret("core", "fernet_key", "fernet_key", _fernet_key)

# Who needs which (Airflow 3.3). The JWT secret signs and checks tokens: the api-server issues logins'
# and checks every task's token (Execution API); the scheduler's executor signs each task's token
# (BaseExecutor.jwt_generator). The dag-processor and triggerer serve their children through
# InProcessExecutionAPI, which checks no token. The Fernet key encrypts connections and variables in
# the database, for those that read them for others: the api-server (UI, REST and Execution APIs: the
# tasks'), the dag-processor (DAG files, callbacks) and the triggerer (triggers' hooks); the scheduler
# reads none, so tasks, forked from it, get no pointer to it. ``db migrate`` may rewrite encrypted rows.
SECRETS_OF: dict[str, tuple[StackSecret, ...]] = {
    "scheduler": (JWT_SECRET,),
    "dag-processor": (FERNET_KEY,),
    "api-server": (JWT_SECRET, FERNET_KEY),
    "triggerer": (FERNET_KEY,),
    "db-migrate": (FERNET_KEY,),
    "exporter": (),  # the release exporter reads the ledger's file in the state directory: no secret
}


def secret_command(path: Path) -> str:
    """What Airflow runs (``run_command``: shlex-split, no shell) to read a secret from its file."""
    return f"cat {shlex.quote(str(path))}"


def component_env(component: str, home: Path, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of one Airflow process: ``base`` without any way to a stack secret it may have
    inherited, plus an ``AIRFLOW__<SECTION>__<KEY>_CMD`` for each secret in ``SECRETS_OF[component]``.
    Never a secret's value: children (tasks, and what they start) inherit the environment."""
    names = set().union(*(secret.names() for secret in (JWT_SECRET, FERNET_KEY)))
    env = {name: value for name, value in base.items() if name not in names}
    for secret in SECRETS_OF[component]:
        env[f"{secret.variable}_CMD"] = secret_command(home / secret.file)
    return env


def ensure_secrets(home: Path) -> None:
    """The JWT secret, the Fernet key and the admin password of ``home``: each generated once, 0600."""
    for secret in (JWT_SECRET, FERNET_KEY):
        _secret(home / secret.file, secret.make)
    admin_password(home)


def _secret(path: Path, make) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "w") as file:
            file.write(make())
    return path.read_text().strip()


def admin_password(home: Path) -> str:
    """The admin password, generated once per AIRFLOW_HOME into the simple auth manager's file."""
    return user_password(home, "admin")


def user_password(home: Path, user: str) -> str:
    """The password of a simple auth manager user, generated once per AIRFLOW_HOME into the manager's file
    (0600), before Airflow starts: Airflow would print a password it generates to its log. The user itself is
    ``[core] simple_auth_manager_users``' (the stack has admin; the e2e tests add a second approver)."""
    path = password_file(home)
    passwords = json.loads(_secret(path, lambda: "{}"))
    if user not in passwords:
        passwords[user] = secrets.token_urlsafe(12)
        with _open_private(path, "w") as file:
            file.write(json.dumps(passwords))
    return passwords[user]


def registry_credentials(path: Path, registry: str) -> RegistryCredentials:
    """The host's registry credentials in ``path`` (0600, in a 0700 directory): the password generated once,
    the address the one the stack gives the registry now (rewritten when it changed)."""
    private_dir(path.parent)
    made = RegistryCredentials(registry, REGISTRY_USER, secrets.token_urlsafe(24))
    _secret(path, made.to_json)
    stored = RegistryCredentials.read(path)
    if stored.registry != registry:
        stored = RegistryCredentials(registry, stored.username, stored.password)
        with _open_private(path, "w") as file:
            file.write(stored.to_json())
    return stored


def htpasswd(path: Path, credentials: RegistryCredentials) -> Path:
    """The registry's htpasswd file at ``path`` (0600; root in the registry's container reads it): kept while it
    holds ``credentials`` (so the container is not made again for a new salt), else written anew."""
    user, _, hashed = path.read_text().strip().partition(":") if path.exists() else ("", "", "")
    if user == credentials.username and hashed.startswith("$2") and _crypt().crypt(credentials.password, hashed) == hashed:
        return path
    with _open_private(path, "w") as file:
        file.write(f"{credentials.username}:{_bcrypt(credentials.password)}\n")
    return path


# bcrypt is the registry's only htpasswd scheme. 2^5 rounds, as Apache's htpasswd -B: the password is 32
# random characters, beyond any guessing whatever the cost, and the registry checks it on every request.
BCRYPT_ROUNDS = 2**5


def _bcrypt(password: str) -> str:
    crypt = _crypt()
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=BCRYPT_ROUNDS)) or ""
    if not hashed.startswith("$2"):
        raise RuntimeError("this system's crypt(3) makes no bcrypt hash, the only kind the registry's htpasswd takes")
    return hashed


def _crypt():
    """The C library's crypt(3) (libxcrypt has bcrypt) through Python's ``crypt``, deprecated but there in 3.11
    and 3.12: the lock has no bcrypt package. Python 3.13 removes it; then ``bcrypt`` from PyPI does this."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt


def password_file(home: Path) -> Path:
    return home / "simple_auth_manager_passwords.json"


def private_mode(mode: int) -> int | None:
    """The mode a path of ``mode`` (an ``lstat``'s ``st_mode``) gets in a private tree: None for what is
    neither a directory nor a regular file (symlinks, sockets)."""
    if stat.S_ISDIR(mode):
        return PRIVATE_DIR
    if stat.S_ISREG(mode):
        return PRIVATE_FILE
    return None


def make_private(top: Path) -> None:
    """Directories 0700 and files 0600 in ``top``, as the umask makes new ones: for what an earlier
    version of the stack left readable. Skips what another user (root in a container) owns."""
    uid = os.getuid()
    for directory, _, files in os.walk(top):
        for path in (directory, *(os.path.join(directory, name) for name in files)):
            info = os.lstat(path)
            mode = private_mode(info.st_mode)
            if mode is not None and info.st_uid == uid and stat.S_IMODE(info.st_mode) != mode:
                os.chmod(path, mode)


def private_dir(path: Path) -> Path:
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR)  # mkdir's mode is the umask's to cut, and an existing one keeps its own
    return path


def _open_private(path: Path, mode: str):
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, PRIVATE_FILE), mode)



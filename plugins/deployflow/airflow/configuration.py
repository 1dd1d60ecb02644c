"""The release's configuration, where Airflow runs: secrets read through Airflow, masked, stored for the instances.

prepare resolves the environment's ``config`` (any Airflow secrets backend
answers ``Connection.get`` and ``Variable.get``: Vault, a cloud secret
manager, the metadata database), registers every secret value with Airflow's
secrets masker before anything could log it, stores the resolved values
where the platform keeps them (``publish``), and releases the image under
its release version (image and configuration version). The later steps
release what prepare decided: its XCom ``release`` holds the two versions,
never a value.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import Connection, Variable
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import mask_secret

from deployflow.airflow.task_ids import PREPARE, RESOLVE
from deployflow.catalog import Environment
from deployflow.configuration import ResolvedConfig, SecretRef, release_version, resolve

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

KEY_VARIABLE = "deployflow_config_key"  # the HMAC key of configuration versions, made on first use
RELEASE_XCOM = "release"

Publish = Callable[[str, ResolvedConfig], None]


def read_secret(ref: SecretRef) -> str:
    """A secret's value through Airflow, masked in every log from now on; a missing one names its reference."""
    if ref.kind == "variable":
        value = Variable.get(ref.name, default=None)
        if value is None:
            raise AirflowFailException(f"secret {ref.describe()}: no such Airflow variable (or secrets backend entry)")
    else:
        try:
            conn = Connection.get(ref.name)
        except Exception:  # noqa: BLE001 - AirflowNotFoundException and the backends' own errors alike
            raise AirflowFailException(f"secret {ref.describe()}: no such Airflow connection (or secrets backend entry)") from None
        value = _field(conn, ref)
    value = str(value)
    mask_secret(value)
    return value


def _field(conn: Any, ref: SecretRef) -> Any:
    if ref.key == "uri":
        return conn.get_uri()
    if ref.key.startswith("extra."):
        extra = conn.extra_dejson
        if ref.key[6:] not in extra:
            raise AirflowFailException(f"secret {ref.describe()}: the connection's extra has no key {ref.key[6:]!r}")
        return extra[ref.key[6:]]
    value = getattr(conn, ref.key)
    if value in (None, ""):
        raise AirflowFailException(f"secret {ref.describe()}: the connection's {ref.key} is empty")
    return value


def config_key() -> bytes:
    """The key configuration versions are keyed with: one per Airflow deployment, so every worker agrees."""
    key = Variable.get(KEY_VARIABLE, default=None)
    if not key:
        key = secrets.token_hex(32)
        Variable.set(KEY_VARIABLE, key, description="deployflow: HMAC key of configuration versions (not a secret's value)")
    mask_secret(key)
    return key.encode()


def config_version(env: Environment) -> str:
    """The version of the environment's configuration as it resolves now ('' for none): what prepare would release."""
    return "" if env.config.empty else resolve(env.config, read_secret).version(config_key())


def release_of_step(step: str, context: Context, env: Environment, image_version: str, publish: Publish) -> str:
    """The version this step releases: prepare resolves and publishes the configuration; the others read prepare's."""
    ti = context["ti"]
    if step != "prepare":
        decided = ti.xcom_pull(task_ids=PREPARE, key=RELEASE_XCOM) or {}
        return decided.get("version") or image_version
    started = time.monotonic()
    config_version = ""
    resolved_request = ti.xcom_pull(task_ids=RESOLVE) or {}
    if resolved_request.get("rollback_to"):
        # A rollback puts back the configuration version it was promoted with too: the one the environment's store
        # keeps (its last KEEP); a deployer that does not find it there says so and fails before any switch.
        config_version = (resolved_request.get("artifact") or {}).get("config") or ""
        log.info("rollback: configuration %s as it was released, not resolved again", config_version or "(none)")
    elif not env.config.empty:
        resolved = resolve(env.config, read_secret)
        config_version = resolved.version(config_key())
        publish(config_version, resolved)
        log.info("configuration %s of %s: %d variable(s) (%d secret), %d file(s) in %.2f s", config_version, env.name,
                 len(resolved.env) + len(resolved.external), len(resolved.secret), len(resolved.files), time.monotonic() - started)
    version = release_version(image_version, config_version)
    ti.xcom_push(key=RELEASE_XCOM, value={"version": version, "image_version": image_version, "config": config_version})
    return version

"""An environment's configuration: what its instances get beside the image, and the version that names it.

The catalog gives each environment plain values, feature flags, files and
secrets by reference (an Airflow connection or variable, or on Kubernetes an
existing Secret). The prepare step resolves the references into a
:class:`ResolvedConfig` and stores it where the environment's platform keeps
secrets (a 0600 file on the Docker host, a Secret in the namespace); the
instances get it from there. Only its *version* travels: a keyed hash (HMAC)
of the resolved values, so the version changes with any value and reveals
none, not even a short one that a plain hash would let anyone guess.

What is released is an image plus a configuration: the release version is the
image's version with the configuration version after it (``0123456789ab-c5d41402abc4b``),
so a configuration-only change is a new version to the rollout engine (same
strategy, health checks, analysis and rollback), and rolling back restores the
previous configuration with the previous image.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
FLAG_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
# What the platform itself sets in every instance: a catalog value may not replace it.
RESERVED_ENV = ("PORT", "BIND", "APP_TRACK", "APP_VERSION", "APP_COMMIT", "CONFIG_VERSION", "CONFIG_DIR")
CONFIG_DIR = "/run/deployflow/config"  # where an instance finds the configuration's files
SECRET_KINDS = ("connection", "variable", "kubernetes_secret")
CONNECTION_FIELDS = ("password", "login", "host", "schema", "port", "uri")  # or extra.<key>
VERSION_LENGTH = 12
_RELEASE = re.compile(rf"(?P<image>.+)-c(?P<config>[0-9a-f]{{{VERSION_LENGTH}}})")


def flag_env(name: str) -> str:
    """The variable a feature flag reaches the instances as: ``new_checkout`` -> ``FLAG_NEW_CHECKOUT``."""
    return f"FLAG_{name.upper()}"


@dataclass(frozen=True)
class SecretRef:
    """Where a secret's value is kept: never the value itself.

    ``connection``: an Airflow connection (``key`` one of its fields, or ``extra.<key>``); ``variable``: an
    Airflow variable; ``kubernetes_secret``: a Secret in the environment's namespace (``key`` one of its
    keys), read by the kubelet and never by deployflow.
    """

    kind: str
    name: str
    key: str = ""

    def describe(self) -> str:
        return f"{self.kind.replace('_', ' ')} {self.name!r}" + (f" ({self.key})" if self.key else "")


@dataclass(frozen=True)
class Config:
    """The ``config`` block of an environment, as the catalog says it (no secret value in it)."""

    values: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, SecretRef] = field(default_factory=dict)
    files: Mapping[str, str | SecretRef] = field(default_factory=dict)  # plain content, or a secret's
    flags: Mapping[str, bool] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.values or self.secrets or self.files or self.flags)

    def env_names(self) -> tuple[str, ...]:
        return (*self.values, *self.secrets, *(flag_env(n) for n in self.flags))


@dataclass(frozen=True)
class Resources:
    """Limits of every instance of an environment, on Docker as on Kubernetes (requests equal limits there)."""

    cpu: str = "500m"
    memory: str = "1Gi"
    pids: int = 512  # Docker only: Kubernetes sets a pod's pids limit per node (kubelet podPidsLimit)


@dataclass(frozen=True, repr=False)
class ResolvedConfig:
    """The configuration with its secrets read: what the instances get. Its ``repr`` shows names, never values.

    ``secret`` names the variables and files whose values are secrets; ``external`` the variables a
    Kubernetes Secret gives the instances directly (its reference is part of the version, its value is not).
    """

    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    secret: frozenset[str] = frozenset()
    external: Mapping[str, SecretRef] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.env or self.files or self.external)

    def __repr__(self) -> str:
        return f"ResolvedConfig(env={sorted(self.env)}, files={sorted(self.files)}, external={sorted(self.external)})"

    def to_json(self) -> str:
        return json.dumps({"env": dict(self.env), "files": dict(self.files), "secret": sorted(self.secret),
                           "external": {n: [r.kind, r.name, r.key] for n, r in self.external.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ResolvedConfig:
        data = json.loads(text)
        return cls(env=data.get("env", {}), files=data.get("files", {}), secret=frozenset(data.get("secret", [])),
                   external={n: SecretRef(*r) for n, r in data.get("external", {}).items()})

    def version(self, key: bytes) -> str:
        """The configuration version: HMAC-SHA256 of the canonical values under the stack's key, shortened."""
        return hmac.new(key, self.to_json().encode(), hashlib.sha256).hexdigest()[:VERSION_LENGTH]

    def secret_values(self) -> list[str]:
        """Every secret value, for a secrets masker."""
        return [v for n, v in (*self.env.items(), *self.files.items()) if n in self.secret and v]


def resolve(config: Config, read: Callable[[SecretRef], str]) -> ResolvedConfig:
    """The configuration with each secret read through ``read(ref) -> str`` (an Airflow connection or variable).

    ``kubernetes_secret`` references are not read: the kubelet hands them to the pods.
    """
    env = dict(config.values)
    env.update({flag_env(name): "true" if on else "false" for name, on in config.flags.items()})
    secret, external = set(), {}
    for name, ref in config.secrets.items():
        if ref.kind == "kubernetes_secret":
            external[name] = ref
            continue
        env[name] = read(ref)
        secret.add(name)
    files = {}
    for name, content in config.files.items():
        if isinstance(content, SecretRef):
            files[name] = read(content)
            secret.add(name)
        else:
            files[name] = content
    return ResolvedConfig(env=env, files=files, secret=frozenset(secret), external=external)


def release_version(image_version: str, config_version: str) -> str:
    """The version the rollout engine releases: the image's, and the configuration's after it if there is one."""
    return f"{image_version}-c{config_version}" if config_version else image_version


def config_version_of(version: str) -> str:
    """The configuration version inside a release version ('' for a release with no configuration)."""
    match = _RELEASE.fullmatch(version)
    return match.group("config") if match else ""


def image_version_of(version: str) -> str:
    """The image's version inside a release version (the commit the image was built from)."""
    match = _RELEASE.fullmatch(version)
    return match.group("image") if match else version


_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m|k|Ki|Mi|Gi|Ti|M|G|T)?")
_FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number: ``500m`` -> 0.5, ``1Gi`` -> 1073741824."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a quantity such as 500m, 2 or 1Gi")
    return float(match.group(1)) * _FACTORS[match.group(2)]

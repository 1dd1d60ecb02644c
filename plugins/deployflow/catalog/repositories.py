"""``source.repo``: where a service's code is, in the few shapes git is given here.

    repo: https://git.example.com/payments/checkout.git      # credentials: {connection: <id>} if it needs any
    repo: ssh://git@git.example.com/payments/checkout.git     # or git@git.example.com:payments/checkout.git
    repo: /srv/git/checkout                                   # a repository on the worker: granted only
    repo: services/checkout                                   # relative to the deployflow checkout

A repository is read on the worker, with the worker's files and network: the value is refused where git
would do more than clone (``ext::`` and other remote helpers, ``file://``, a leading ``-``), where it
leaves its place (a ``..`` component), and where it carries a password or token (``https://user:token@``
ends up in logs and in the clone's config): credentials come from an Airflow connection. Which hosts,
prefixes and paths a service may build from is the platform's grant (``deployflow.catalog.grants``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from deployflow.catalog.fields import Fields
from deployflow.catalog.model import CONNECTION_ID, Source
from deployflow.catalog.refs import check_git_ref
from deployflow.errors import ConfigError, shown

MAX_LENGTH = 500
_URL = re.compile(r"(?P<scheme>https|ssh)://(?:(?P<user>[^@/]*)@)?(?P<host>[A-Za-z0-9.-]+)(?::\d{1,5})?/\S+")
_SCP = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!/)\S+")  # git@host:owner/repo.git
_SHAPES = ("an https:// or ssh:// URL, git@host:path, an absolute path on the worker, or a path relative to the "
           "deployflow checkout")


def check_repository(value: str, path: str) -> str:
    """``value`` if it is a repository location git may be given; else a :class:`ConfigError` at ``path``."""
    def refuse(why: str) -> ConfigError:
        return ConfigError(path, f"{shown(value)} is not valid: {why}; a repository is {_SHAPES}")

    if not value or len(value) > MAX_LENGTH:
        raise refuse(f"it must be 1 to {MAX_LENGTH} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zs") for c in value):
        raise refuse("it contains a control, format or space character")
    if value.startswith("-"):
        raise refuse("it starts with '-' (git would read an option)")
    if "::" in value.split("/")[0] or re.match(r"[A-Za-z][A-Za-z0-9+.-]*::", value):
        raise refuse("a remote helper (transport::address) runs a program")
    if "://" in value:
        url = _URL.fullmatch(value)
        if url is None:
            scheme = value.split("://")[0]
            raise refuse(f"the {shown(scheme)} scheme is not taken (https and ssh are)")
        if url["scheme"] == "https" and url["user"] is not None:
            raise refuse("it carries credentials; name an Airflow connection in source.credentials instead")
        if url["user"] and ":" in url["user"]:
            raise refuse("it carries a password; ssh uses the worker's key")
        return value
    if "@" in value.split("/")[0] and ":" in value:
        if not _SCP.fullmatch(value) or ":" in value.split("@")[0]:
            raise refuse("it is neither a URL nor git@host:path")
        return value
    if ".." in value.split("/"):
        raise refuse("it has a '..' component")
    if ":" in value.split("/")[0]:
        raise refuse("a ':' before the first '/' makes git read it as host:path")
    return value


def source(raw: Any, path: str) -> Source:
    """The ``source`` block: the repository, the build context in it, the default ref, the credentials."""
    f = Fields(raw, path, ("repo", "context", "default_ref", "credentials"))
    credentials = None
    if f.get("credentials") is not None:
        c = Fields(f.get("credentials"), f.at("credentials"), ("connection",))
        credentials = c.string("connection", pattern=CONNECTION_ID, hint="must be an Airflow connection id")
    repo = check_repository(f.string("repo"), f.at("repo"))
    if credentials and not repo.startswith("https://"):
        raise ConfigError(f.at("credentials"), "only an https:// repository takes credentials from a connection "
                                               "(an ssh one uses the worker's own key)")
    return Source(
        repo=repo,
        context=f.relative_path("context", ".", inside="the repository"),
        default_ref=check_git_ref(f.get("default_ref", "HEAD"), f.at("default_ref")),
        credentials=credentials,
    )

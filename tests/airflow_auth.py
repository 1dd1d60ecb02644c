"""Airflow's own sign-in, in one process, for the tests and the benchmark of the Releases view: the simple auth
manager the stack runs (``[core] auth_manager``'s default), real JWTs it signs for a user and a role, checked by
Airflow's ``get_user`` as in the API server, revocation included. Airflow's API server looks every token's id
up in its metadata database (``revoked_token``): here that table is the only one, in a SQLite file of a
temporary directory, bound to Airflow's session for as long as :func:`signed_in_airflow` lasts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import scoped_session, sessionmaker

from airflow import settings
from airflow.api_fastapi.app import create_auth_manager, get_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.configuration import conf
from airflow.models.revoked_token import RevokedToken

JWT_SECRET = "deployflow-tests-only-" + "0" * 16  # signs and checks the tokens of these tests, nothing else


class Tokens:
    """Tokens of the auth manager in use."""

    def token(self, user: str, role: str | None) -> str:
        """A JWT for ``user`` with ``role`` (the simple auth manager's: viewer, user, op, admin; None: none)."""
        return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user, role=role))

    def revoke(self, token: str) -> None:
        """Sign ``token`` out, as Airflow's logout does."""
        get_auth_manager().revoke_token(token)

    def header(self, user: str, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, role)}"}


@contextmanager
def signed_in_airflow(directory: Path) -> Iterator[Tokens]:
    """Airflow's auth manager made (the stack's, by its configuration), its token key set, and its session bound
    to a database in ``directory`` holding the revoked tokens' table; all put back after."""
    engine = sa.create_engine(f"sqlite:///{directory / 'airflow-auth.db'}")
    RevokedToken.__table__.create(engine)
    before = settings.Session, conf.get("api_auth", "jwt_secret", fallback=None)
    settings.Session = scoped_session(sessionmaker(bind=engine, expire_on_commit=False))
    conf.set("api_auth", "jwt_secret", JWT_SECRET)
    try:
        create_auth_manager()
        yield Tokens()
    finally:
        settings.Session.remove()
        settings.Session = before[0]
        if before[1] is None:
            conf.remove_option("api_auth", "jwt_secret")
        else:
            conf.set("api_auth", "jwt_secret", before[1])
        engine.dispose()

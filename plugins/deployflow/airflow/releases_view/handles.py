"""The Releases view's handles: roll back, abort, promote now, approve or reject, freeze and unfreeze, from its pages.

    POST /api/services/{service}/environments/{environment}/rollback  {"to": "previous"|COMMIT, "reason", "strategy"}
    POST /api/services/{service}/environments/{environment}/abort     {"reason", "run_id"}
    POST /api/services/{service}/environments/{environment}/promote   {"reason", "run_id"}
    POST /api/services/{service}/environments/{environment}/approve   {"reason", "run_id"}
    POST /api/services/{service}/environments/{environment}/reject    {"reason", "run_id"}
    POST /api/freeze    {"reason", "environments": [...], "until"}
    POST /api/unfreeze  {"environments": [...]}

Each handle does what the CLI's command of its name does (the same functions of ``deployflow.client``), through
Airflow's REST API with the signed-in user's own token: Airflow checks the user's role again and writes its
audit log, and a rollback or an abort lands in the ledger with who and why. A service's handles need the right
to trigger its release DAG (``access.py``'s ``may_act``: 403 otherwise, before Airflow is asked); the freeze is
Airflow's Variable, which Airflow's own check guards.

The body is JSON only: a page of another site cannot send one with the user's cookie (a form cannot set the
content type, and a script of another origin needs a CORS preflight, which Airflow does not grant), and an
``Origin`` header, when the browser sends one, must be this host's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any

import requests
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.configuration import conf
from fastapi import Depends, FastAPI, HTTPException, Request, status
from pydantic import BaseModel, Field

from deployflow.client.api import AirflowClient, ApiError, BadInput, ClientError, NothingToDo, Refused, Unreachable
from deployflow.client.freezes import lift_freeze, set_freeze, shown
from deployflow.client.gates import APPROVE, REJECT, answer_gate
from deployflow.client.release import trigger
from deployflow.client.steering import abort_release, promote_release
from deployflow.errors import one_of
from deployflow.policies import ENVIRONMENTS
from deployflow.release import run_note

REASON_FIELD = Field(default="", max_length=500)
HTTP_OF: dict[type[ClientError], int] = {BadInput: 400, Refused: 409, NothingToDo: 409, Unreachable: 502}


class RollbackBody(BaseModel):
    to: str = Field(default="previous", max_length=40)
    reason: str = REASON_FIELD
    strategy: str | None = Field(default=None, max_length=20)


class RunBody(BaseModel):
    reason: str = REASON_FIELD
    run_id: str | None = Field(default=None, max_length=250)


class FreezeBody(BaseModel):
    reason: str = REASON_FIELD
    environments: list[str] = Field(default_factory=list, max_length=len(ENVIRONMENTS))
    until: str | None = Field(default=None, max_length=40)


class UnfreezeBody(BaseModel):
    environments: list[str] = Field(default_factory=list, max_length=len(ENVIRONMENTS))


def environment_of(environment: str) -> str:
    """The path's environment; 400 naming the valid ones otherwise."""
    if environment not in ENVIRONMENTS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"environment: {one_of(environment, ENVIRONMENTS)}")
    return environment


Environment = Annotated[str, Depends(environment_of)]


def airflow_api_url() -> str:
    """Where this API server answers Airflow's REST API: ``[api] base_url``, else its host and port."""
    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    if base:
        return base
    host = conf.get("api", "host", fallback="127.0.0.1")
    return f"http://{'127.0.0.1' if host in ('', '0.0.0.0', '::') else host}:{conf.get('api', 'port', fallback='8080')}"


def same_origin(request: Request) -> None:
    """403 for a request that a page of another origin sent (its ``Origin`` names another host)."""
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1].rstrip("/") != request.headers.get("host", ""):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"a handle is only used from Airflow's own pages, not from {origin}")


def user_token(request: Request) -> str:
    """The signed-in user's own JWT, as Airflow's ``get_user`` read it (the header's, else the UI's cookie)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    token = request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:  # get_user let the request in, so one of the two is there
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not signed in")
    return token


def as_user(request: Request) -> Callable[[], AirflowClient]:
    """A client of Airflow's REST API that calls as the signed-in user."""
    token = user_token(request)

    def connect() -> AirflowClient:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        return AirflowClient(airflow_api_url(), session=session)

    return connect


def acting(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``call``'s answer; a refusal of the client or of Airflow as an HTTP error saying why."""
    try:
        return call()
    except ApiError as exc:
        raise HTTPException(exc.status if 400 <= exc.status < 500 else status.HTTP_502_BAD_GATEWAY, exc.detail) from None
    except ClientError as exc:
        raise HTTPException(next((code for kind, code in HTTP_OF.items() if isinstance(exc, kind)), 502), str(exc)) from None


def add_handles(app: FastAPI, may_act: Callable[[Any, str], str]) -> None:
    """The handles' routes. :param may_act: (user, service) -> the user's name once they may act on the service's
    release DAG; raises HTTPException 403 (or 404) otherwise."""
    checked = [Depends(same_origin)]

    @app.post("/api/services/{service}/environments/{environment}/rollback", dependencies=checked)
    def rollback(service: str, environment: Environment, body: RollbackBody, request: Request,
                 user: GetUserDep) -> dict[str, Any]:
        name = may_act(user, service)
        conf_ = {"environment": environment, "rollback_to": body.to, "reason": body.reason or f"rollback by {name}",
                 "strategy": body.strategy}
        conf_ = {k: v for k, v in conf_.items() if v}

        def go() -> dict[str, Any]:
            run = trigger(as_user(request)(), f"release_{service}", conf_, run_note({**conf_, "requested_by": name}),
                          datetime.now(timezone.utc))
            return {"done": f"rollback of {service} in {environment} to {body.to} triggered as run {run['dag_run_id']}",
                    "run_id": run["dag_run_id"], "conf": conf_}

        return acting(go)

    @app.post("/api/services/{service}/environments/{environment}/abort", dependencies=checked)
    def abort(service: str, environment: Environment, body: RunBody, request: Request, user: GetUserDep) -> dict[str, Any]:
        name = may_act(user, service)

        def go() -> dict[str, Any]:
            done = abort_release(as_user(request)(), service, environment, by=name, reason=body.reason, run_id=body.run_id)
            return {"done": f"run {done.run_id} aborted ({', '.join(done.stopped)} stopped); the rollback follows",
                    **done.to_dict()}

        return acting(go)

    @app.post("/api/services/{service}/environments/{environment}/promote", dependencies=checked)
    def promote(service: str, environment: Environment, body: RunBody, request: Request,
                user: GetUserDep) -> dict[str, Any]:
        name = may_act(user, service)

        def go() -> dict[str, Any]:
            done = promote_release(as_user(request)(), service, environment, by=name, reason=body.reason,
                                   run_id=body.run_id)
            how = "its promote step restarted with no pause" if done.restarted else "its promote step will skip its pauses"
            return {"done": f"run {done.run_id} promoted now: {how}", **done.to_dict()}

        return acting(go)

    def answering(option: str) -> Callable[..., dict[str, Any]]:
        def answer(service: str, environment: Environment, body: RunBody, request: Request,
                   user: GetUserDep) -> dict[str, Any]:
            name = may_act(user, service)

            def go() -> dict[str, Any]:
                row = answer_gate(as_user(request), service, environment, option, reason=body.reason, user=name,
                                  run_id=body.run_id)
                return {"done": f"{row['gate']} of run {row['run_id']}: {option.lower()}d by {row['by']}", **row}

            return acting(go)

        return answer

    for option in (APPROVE, REJECT):
        app.post(f"/api/services/{{service}}/environments/{{environment}}/{option.lower()}", dependencies=checked,
                 name=option.lower())(answering(option))

    @app.post("/api/freeze", dependencies=checked)
    def freeze(body: FreezeBody, request: Request, user: GetUserDep) -> dict[str, Any]:
        if not body.reason.strip():
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "reason: a freeze must say why (every release it refuses says it)")
        def go() -> dict[str, Any]:
            data, _ = shown(set_freeze(as_user(request), reason=body.reason, environments=body.environments,
                                       until=body.until or None))
            return {"done": f"freeze {data['name']} {data['action']}", **data}

        return acting(go)

    @app.post("/api/unfreeze", dependencies=checked)
    def unfreeze(body: UnfreezeBody, request: Request, user: GetUserDep) -> dict[str, Any]:
        def go() -> dict[str, Any]:
            data, _ = shown(lift_freeze(as_user(request), body.environments))
            return {"done": f"freeze {data['name']} {data['action']}", **data}

        return acting(go)

"""FakeKubernetesAPI: a FAKE of the Kubernetes API for the driver's unit tests (no cluster can run here).

It stands in for the official client's AppsV1Api, CoreV1Api and
CustomObjectsApi with the same method names and arguments, keeps every object
it is given, answers 404 and 409 as the API server does (missing object, stale
resourceVersion, create of an existing name), bumps metadata.generation on a
spec change, and records each call as (verb, apiGroup, resource, name): what
the RBAC test compares with the deployer's Role. A tiny "controller" fills in
Deployment status on every read: pods of an image listed in ``unready`` never
become ready; the others are ready at once. FakeKubernetesServer puts the same
fake behind real HTTP, for the official client and the deployer CLI.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes.client.exceptions import ApiException

NOUNS = {"deployment": ("apps", "deployments", "Deployment"), "service": ("", "services", "Service"),
         "config_map": ("", "configmaps", "ConfigMap")}
VERBS = {"read": "get", "create": "create", "replace": "update", "delete": "delete"}


class FakeKubernetesAPI:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.objects: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, str, str, str]] = []
        self.written: list[dict] = []  # every body sent to create or replace, as sent
        self.unready: set[str] = set()  # images whose pods never pass their readiness probe
        self.deadline_exceeded: set[str] = set()  # images whose rollout reports ProgressDeadlineExceeded
        self.gateway_api = True  # False: the cluster has no Gateway API CRDs (every httproutes call is a 404)
        self._version = 0
        self.apps = self.core = _TypedAPI(self)
        self.custom = _CustomObjectsAPI(self)

    @staticmethod
    def serialize(obj: Any) -> Any:
        return copy.deepcopy(obj)

    # ---- storage, as the API server does it ----------------------------------------------

    def _call(self, verb: str, group: str, resource: str, name: str, namespace: str) -> None:
        self.calls.append((verb, group, resource, name))
        if namespace != self.namespace:
            raise ApiException(status=403, reason=f"Forbidden: the deployer may only act in {self.namespace}, not {namespace}")

    def read(self, kind: str, name: str) -> dict:
        if (kind, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        obj = copy.deepcopy(self.objects[(kind, name)])
        if kind == "Deployment":
            obj["status"] = self._deployment_status(obj)
        return obj

    def create(self, kind: str, body: dict) -> dict:
        self.written.append(copy.deepcopy(body))
        name = body["metadata"]["name"]
        if (kind, name) in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        if body["metadata"].get("namespace", self.namespace) != self.namespace:
            raise ApiException(status=400, reason="the namespace of the object does not match the request's")
        obj = copy.deepcopy(body)
        obj["metadata"]["generation"] = 1
        self._stamp(obj)
        if kind == "Service":
            obj["spec"]["clusterIP"] = "192.0.2.10"  # TEST-NET-1: documentation addresses, never routed
        self.objects[(kind, name)] = obj
        return copy.deepcopy(obj)

    def replace(self, kind: str, name: str, body: dict) -> dict:
        self.written.append(copy.deepcopy(body))
        current = self.objects.get((kind, name))
        if current is None:
            raise ApiException(status=404, reason="Not Found")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict: the object has been modified")
        if kind == "Service" and body["spec"].get("clusterIP") != current["spec"]["clusterIP"]:
            raise ApiException(status=422, reason="spec.clusterIP: Invalid value: field is immutable")
        if kind == "Deployment" and body["spec"]["selector"] != current["spec"]["selector"]:
            raise ApiException(status=422, reason="spec.selector: Invalid value: field is immutable")
        obj = copy.deepcopy(body)
        changed = obj.get("spec") != current.get("spec")
        obj["metadata"]["generation"] = current["metadata"]["generation"] + (1 if changed else 0)
        self._stamp(obj)
        self.objects[(kind, name)] = obj
        return copy.deepcopy(obj)

    def delete(self, kind: str, name: str) -> None:
        if self.objects.pop((kind, name), None) is None:
            raise ApiException(status=404, reason="Not Found")

    def _stamp(self, obj: dict) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def _deployment_status(self, obj: dict) -> dict:
        want = obj["spec"].get("replicas", 1)
        image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        status = {"observedGeneration": obj["metadata"]["generation"], "replicas": want, "updatedReplicas": want,
                  "readyReplicas": want, "availableReplicas": want}
        if image in self.unready and want:
            status.update(readyReplicas=0, availableReplicas=0, replicas=want)
        if image in self.deadline_exceeded and want:
            status.update(readyReplicas=0, availableReplicas=0,
                          conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                       "message": f'ReplicaSet of {obj["metadata"]["name"]} has timed out progressing.'}])
        return status

    # ---- what tests look at ---------------------------------------------------------------

    def get(self, kind: str, name: str) -> dict | None:
        return self.objects.get((kind, name))

    def replicas(self, name: str) -> int | None:
        obj = self.get("Deployment", name)
        return None if obj is None else obj["spec"]["replicas"]

    def image(self, name: str) -> str | None:
        obj = self.get("Deployment", name)
        return None if obj is None else obj["spec"]["template"]["spec"]["containers"][0]["image"]

    def selector(self, name: str) -> dict | None:
        obj = self.get("Service", name)
        return None if obj is None else obj["spec"]["selector"]

    def weights(self, name: str) -> dict[str, int] | None:
        obj = self.get("HTTPRoute", name)
        return None if obj is None else {b["name"]: b["weight"] for r in obj["spec"]["rules"] for b in r["backendRefs"]}

    def writes(self) -> list[tuple[str, str, str, str]]:
        return [c for c in self.calls if c[0] != "get"]

    def permissions(self) -> set[tuple[str, str, str]]:
        """(apiGroup, resource, verb) of every call made."""
        return {(group, resource, verb) for verb, group, resource, _ in self.calls}


class _TypedAPI:
    """AppsV1Api and CoreV1Api: ``<verb>_namespaced_<noun>`` for the nouns the driver may use; nothing else exists."""

    def __init__(self, api: FakeKubernetesAPI) -> None:
        self._api = api

    def __getattr__(self, method: str) -> Any:
        verb, _, noun = method.partition("_namespaced_")
        if verb not in VERBS or noun not in NOUNS:
            raise AttributeError(f"the fake Kubernetes API has no {method}")
        group, resource, kind = NOUNS[noun]
        api = self._api

        def call(*args: Any, **kwargs: Any) -> Any:
            if verb == "create":
                namespace, body = args
                api._call("create", group, resource, body["metadata"]["name"], namespace)
                return api.create(kind, body)
            name, namespace, *rest = args
            api._call(VERBS[verb], group, resource, name, namespace)
            if verb == "read":
                return api.read(kind, name)
            if verb == "replace":
                return api.replace(kind, name, rest[0])
            return api.delete(kind, name)

        return call


class _CustomObjectsAPI:
    def __init__(self, api: FakeKubernetesAPI) -> None:
        self._api = api

    def _check(self, verb: str, group: str, version: str, namespace: str, plural: str, name: str) -> None:
        self._api._call(verb, group, plural, name, namespace)
        if (group, version, plural) != ("gateway.networking.k8s.io", "v1", "httproutes") or not self._api.gateway_api:
            raise ApiException(status=404, reason=f"the server could not find the requested resource {group}/{version} {plural}")

    def get_namespaced_custom_object(self, *, group: str, version: str, namespace: str, plural: str, name: str) -> dict:
        self._check("get", group, version, namespace, plural, name)
        return self._api.read("HTTPRoute", name)

    def create_namespaced_custom_object(self, *, group: str, version: str, namespace: str, plural: str, body: dict) -> dict:
        self._check("create", group, version, namespace, plural, body["metadata"]["name"])
        return self._api.create("HTTPRoute", body)

    def replace_namespaced_custom_object(self, *, group: str, version: str, namespace: str, plural: str, name: str,
                                         body: dict) -> dict:
        self._check("update", group, version, namespace, plural, name)
        return self._api.replace("HTTPRoute", name, body)


# ---- the same fake over HTTP, for the real client ---------------------------------------

_PATHS = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/(?P<version>v1))/namespaces/(?P<namespace>[a-z0-9-]+)/(?P<resource>[a-z]+)"
    r"(?:/(?P<name>[a-z0-9-]+))?$"
)
_KINDS = {("", "services"): "Service", ("", "configmaps"): "ConfigMap", ("apps", "deployments"): "Deployment",
          ("gateway.networking.k8s.io", "httproutes"): "HTTPRoute"}
_HTTP_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete"}


class FakeKubernetesServer:
    """FakeKubernetesAPI behind a real HTTP server on 127.0.0.1, speaking the API server's REST paths, so
    the official client (and the deployer CLI with a kubeconfig) can talk to it. Every request is recorded
    as (method, path)."""

    def __init__(self, api: FakeKubernetesAPI) -> None:
        self.api = api
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                path = urlsplit(self.path).path
                server.requests.append((self.command, path))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, answer = server.answer(self.command, path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        match = _PATHS.match(path)
        kind = match and _KINDS.get((match["group"] or "", match["resource"]))
        if not kind or method not in _HTTP_VERBS:
            return 404, _status(404, f"the server could not find the requested resource ({method} {path})")
        verb, name = _HTTP_VERBS[method], match["name"] or (body or {}).get("metadata", {}).get("name", "")
        try:
            self.api._call(verb, match["group"] or "", match["resource"], name, match["namespace"])
            if verb == "get":
                return 200, self.api.read(kind, name)
            if verb == "create":
                return 201, self.api.create(kind, body)
            if verb == "update":
                return 200, self.api.replace(kind, name, body)
            self.api.delete(kind, name)
            return 200, _status(200, "deleted")
        except ApiException as exc:
            return exc.status, _status(exc.status, exc.reason)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": self.api.namespace}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        }))
        return path

    def close(self) -> None:
        self.http.shutdown()


def _status(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Success" if code < 400 else "Failure", "message": message, "code": code}

"""The only place the deployer calls the Kubernetes API: read, create, replace and delete named objects
of one namespace through the official client.

Objects are plain dicts (the manifests' shape) both ways. A change is a full
replace of the object read just before, with its resourceVersion, so two
writers never overwrite each other silently (a conflict is retried on a fresh
read). The verbs and resources used here are exactly what the deployer's Role
grants (templates/rbac.yaml; tests/unit/test_kubernetes_rbac.py compares them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from deployflow.errors import DeployflowError

GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"
UNREAD = object()  # apply's ``current`` when the caller has not read the object
# The release ConfigMap's key of the fencing token (stores/configmap.py): Airflow's side writes it with put_data,
# never a manifest of the deployer's; a replace sends it back as it is, so a record saved never resets the token.
TOKEN_KEY = "fence"


class ClusterError(DeployflowError):
    """The Kubernetes API refused a call; the message names the object and the API's reason."""


class Cluster:
    """Named objects of one namespace. ``apps``, ``core`` and ``custom`` are the client's AppsV1Api,
    CoreV1Api and CustomObjectsApi (tests pass fakes)."""

    def __init__(self, *, namespace: str, apps: Any, core: Any, custom: Any, serialize: Callable[[Any], Any]) -> None:
        self.namespace = namespace
        self.apps, self.core, self.custom = apps, core, custom
        self.serialize = serialize

    @classmethod
    def from_api_client(cls, api_client: Any, namespace: str) -> Cluster:
        return cls(namespace=namespace, apps=k8s.AppsV1Api(api_client), core=k8s.CoreV1Api(api_client),
                   custom=k8s.CustomObjectsApi(api_client), serialize=api_client.sanitize_for_serialization)

    def _calls(self, kind: str) -> dict[str, Callable[..., Any]]:
        ns = self.namespace
        if kind == "HTTPRoute":
            custom = {"group": GATEWAY_GROUP, "version": GATEWAY_VERSION, "namespace": ns, "plural": "httproutes"}
            return {
                "get": lambda name: self.custom.get_namespaced_custom_object(name=name, **custom),
                "create": lambda body: self.custom.create_namespaced_custom_object(body=body, **custom),
                "update": lambda name, body: self.custom.replace_namespaced_custom_object(name=name, body=body, **custom),
            }
        api, noun = {"Deployment": (self.apps, "deployment"), "Service": (self.core, "service"),
                     "ConfigMap": (self.core, "config_map")}[kind]
        return {
            "get": lambda name: getattr(api, f"read_namespaced_{noun}")(name, ns),
            "create": lambda body: getattr(api, f"create_namespaced_{noun}")(ns, body),
            "update": lambda name, body: getattr(api, f"replace_namespaced_{noun}")(name, ns, body),
            "delete": lambda name: getattr(api, f"delete_namespaced_{noun}")(name, ns),
        }

    def get(self, kind: str, name: str) -> dict | None:
        """The object as the API has it now, or None if there is none."""
        try:
            return self.serialize(self._calls(kind)["get"](name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error("read", kind, name, exc) from None

    def apply(self, manifest: dict, *, current: dict | None | object = UNREAD) -> dict:
        """Make the object exactly ``manifest`` (create it, or replace what is there); returns the object as
        the API has it. ``current`` is the object as just read (None: there was none), if the caller has it (one
        call fewer). An object
        that already is ``manifest`` is not written: a re-run step changes nothing, not even resourceVersion."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        calls = self._calls(kind)
        for attempt in range(3):
            if current is UNREAD or attempt:
                current = self.get(kind, name)
            try:
                if current is None:
                    return self.serialize(calls["create"](_stamped(manifest)))
                if _unchanged(current, manifest):
                    return current
                return self.serialize(calls["update"](name, _carry_over(current, _stamped(manifest))))
            except ApiException as exc:
                if exc.status == 409 and attempt < 2:  # someone wrote in between, or it appeared: read again
                    continue
                if exc.status == 404 and kind == "HTTPRoute":
                    raise ClusterError(f"could not write HTTPRoute {self.namespace}/{name}: the cluster serves no Gateway API "
                                       "(gateway.networking.k8s.io/v1 HTTPRoute); install its CRDs and a Gateway, or set "
                                       "the environment's kubernetes.traffic to 'replicas'") from None
                raise self._error("write", kind, name, exc) from None
        raise AssertionError("unreachable")

    def put_data(self, name: str, key: str, value: str, labels: dict[str, str]) -> None:
        """Set one ``key`` of the ConfigMap ``name`` (created with ``labels`` if there is none), leaving the rest
        as it is; a write in between is read again and retried."""
        calls = self._calls("ConfigMap")
        for attempt in range(5):
            current = self.get("ConfigMap", name)
            try:
                if current is None:
                    calls["create"]({"apiVersion": "v1", "kind": "ConfigMap", "data": {key: value},
                                     "metadata": {"name": name, "namespace": self.namespace, "labels": labels}})
                else:
                    calls["update"](name, {**current, "data": {**(current.get("data") or {}), key: value}})
                return
            except ApiException as exc:
                if exc.status == 409 and attempt < 4:
                    continue
                raise self._error("write", "ConfigMap", name, exc) from None

    def delete(self, kind: str, name: str) -> bool:
        """Delete the object; False if it was not there."""
        try:
            self._calls(kind)["delete"](name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise self._error("delete", kind, name, exc) from None

    def _error(self, what: str, kind: str, name: str, exc: ApiException) -> ClusterError:
        return ClusterError(f"could not {what} {kind} {self.namespace}/{name}: {exc.status} {exc.reason}: {_message(exc)}")


def _carry_over(current: dict, desired: dict) -> dict:
    """``desired`` with what the API owns and a replace must send back: resourceVersion, a Service's cluster IPs;
    and a ConfigMap's TOKEN_KEY, which Airflow's side owns."""
    body = {**desired, "metadata": {**desired["metadata"], "resourceVersion": current["metadata"].get("resourceVersion")}}
    if desired["kind"] == "ConfigMap":
        kept = {k: v for k, v in (current.get("data") or {}).items() if k == TOKEN_KEY}
        body["data"] = {**(desired.get("data") or {}), **kept}
    if desired["kind"] == "Service":
        spec = dict(body["spec"])
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key in current.get("spec", {}):
                spec.setdefault(key, current["spec"][key])
        body["spec"] = spec
    return body


APPLIED = "deployflow.io/applied"  # annotation: digest of the manifest last written by the deployer


def _digest(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def _stamped(manifest: dict) -> dict:
    """``manifest`` carrying the digest of itself, so that a later apply can tell it is already there."""
    meta = manifest["metadata"]
    return {**manifest, "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}), APPLIED: _digest(manifest)}}}


def _unchanged(current: dict, manifest: dict) -> bool:
    """Whether ``current`` already is ``manifest``: the deployer wrote exactly it last (the digest: a field it
    dropped since counts as a change), and every field of it still holds (nobody changed one since; what
    the API server added, defaults and status, does not count)."""
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    return annotations.get(APPLIED) == _digest(manifest) and _holds(current, {k: v for k, v in manifest.items() if k != "metadata"}) \
        and _holds(current["metadata"].get("labels") or {}, manifest["metadata"].get("labels") or {})


def _holds(current: object, wanted: object) -> bool:
    """Every field of ``wanted`` has its value in ``current`` (which may have more)."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(k in current and _holds(current[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and len(current) == len(wanted) and all(map(_holds, current, wanted))
    return current == wanted


def _message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body or "{}").get("message", "")
    except ValueError:
        return str(exc.body or "")[:200]

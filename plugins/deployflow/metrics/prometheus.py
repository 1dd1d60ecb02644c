"""Prometheus over its HTTP API (``/api/v1/query_range``); the session is passed in."""

from __future__ import annotations

import math
from typing import Any

import requests

from deployflow.metrics.base import MetricsError, Series


def range_params(query: str, start: float, end: float, step: float) -> dict[str, str]:
    return {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}


def parse_matrix(query: str, body: dict[str, Any]) -> list[Series]:
    if body.get("status") != "success":
        raise MetricsError(f"Prometheus refused {query!r}: {body.get('errorType')}: {body.get('error')}")
    data = body.get("data", {})
    if data.get("resultType") != "matrix":
        raise MetricsError(f"{query!r} returned {data.get('resultType')!r}, not a range (matrix)")
    return [
        Series(dict(item.get("metric", {})), [(float(t), _number(v)) for t, v in item.get("values", [])])
        for item in data.get("result", [])
    ]


def _number(text: str) -> float:
    value = float(text)  # Prometheus writes NaN and +Inf as strings float() reads
    return value if not math.isinf(value) else math.nan


class PrometheusProvider:
    def __init__(self, url: str, session: requests.Session | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        try:
            response = self.session.get(
                f"{self.url}/api/v1/query_range", params=range_params(query, start, end, step), timeout=self.timeout,
            )
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise MetricsError(f"Prometheus at {self.url} did not answer {query!r}: {exc}") from exc
        return parse_matrix(query, body)

    def is_online(self) -> bool:
        try:
            return self.session.get(f"{self.url}/-/ready", timeout=self.timeout).status_code == 200
        except requests.RequestException:
            return False

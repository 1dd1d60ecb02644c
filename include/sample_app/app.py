"""sample-app: the HTTP service deployflow builds, tests and deploys in demos.

Standard library only: its images start from a bare Debian base with python3.
FAULT_* knobs make a "bad release" on purpose; see README.md.
"""
from __future__ import annotations

import bisect
import hashlib
import ipaddress
import json
import math
import os
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping
from urllib.parse import urlsplit

SERVICE = "sample-app"
# Label values are limited to known routes and methods: a scanner probing
# random URLs must not create unbounded metric series.
ROUTES = ("/", "/health", "/ready", "/live", "/metrics", "/config")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


class ConfigError(ValueError):
    """A bad environment variable; the message names it and what is allowed."""


def _get(env: Mapping[str, str], name: str) -> str:
    # Dockerfile ARG -> ENV with an empty default yields VAR="", so an empty
    # value must mean "not set" for every variable.
    return env.get(name, "").strip()


def _bad(name: str, raw: str, allowed: str) -> ConfigError:
    return ConfigError(f"{name}={raw!r} is invalid: must be {allowed}")


def _number(env: Mapping[str, str], name: str, low: float, high: float | None) -> float:
    raw = _get(env, name)
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        raise _bad(name, raw, f"a number between {low} and {high}" if high is not None else f"a number >= {low}")
    return value


def _needs(env: Mapping[str, str], name: str, other: str, what: str) -> ConfigError:
    return ConfigError(f"{name}={_get(env, name)!r} needs {other}: {what}")


@dataclass(frozen=True)
class Config:
    port: int = 8000
    bind: str = "127.0.0.1"
    version: str = "dev"
    commit: str = ""
    track: str = ""
    error_rate: float = 0.0
    errors_after_s: float = 0.0
    latency_ms: float = 0.0
    slow_fraction: float = 0.0
    slow_ms: float = 0.0
    ready_never: bool = False
    crash_after_s: float = 0.0
    crash_after_requests: int = 0
    seed: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        port_raw = _get(env, "PORT") or "8000"
        if not re.fullmatch(r"\d{1,5}", port_raw) or int(port_raw) > 65535:
            raise _bad("PORT", port_raw, "an integer between 0 and 65535")
        bind = _get(env, "BIND") or "127.0.0.1"
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            raise _bad("BIND", bind, "an IPv4 or IPv6 address, e.g. 127.0.0.1 or 0.0.0.0") from None
        ready_raw = _get(env, "FAULT_READY_NEVER")
        if ready_raw.lower() not in _TRUE | _FALSE:
            raise _bad("FAULT_READY_NEVER", ready_raw, "one of 1/true/yes/on or 0/false/no/off")
        seed_raw = _get(env, "FAULT_SEED")
        if seed_raw and not re.fullmatch(r"-?\d+", seed_raw):
            raise _bad("FAULT_SEED", seed_raw, "an integer")
        commit = _get(env, "APP_COMMIT")
        crash_requests_raw = _get(env, "FAULT_CRASH_AFTER_REQUESTS")
        if crash_requests_raw and not re.fullmatch(r"\d{1,9}", crash_requests_raw):
            raise _bad("FAULT_CRASH_AFTER_REQUESTS", crash_requests_raw, "an integer >= 0 (0: off)")
        error_rate = _number(env, "FAULT_ERROR_RATE", 0.0, 1.0)
        errors_after_s = _number(env, "FAULT_ERRORS_AFTER_S", 0.0, None)
        slow_fraction = _number(env, "FAULT_SLOW_FRACTION", 0.0, 1.0)
        slow_ms = _number(env, "FAULT_SLOW_MS", 0.0, None)
        # A knob that would do nothing without its partner is a mistake, not a
        # no-op. The partner set to 0 is fine: that is how a container turns a
        # fault baked into its image off.
        if errors_after_s and not _get(env, "FAULT_ERROR_RATE"):
            raise _needs(env, "FAULT_ERRORS_AFTER_S", "FAULT_ERROR_RATE",
                         "the share of / requests answered 500 once the delay is over, 0.0-1.0 (0: no errors)")
        if slow_fraction and not slow_ms:
            raise _needs(env, "FAULT_SLOW_FRACTION", "FAULT_SLOW_MS > 0", "the time the slow requests take longer")
        if slow_ms and not _get(env, "FAULT_SLOW_FRACTION"):
            raise _needs(env, "FAULT_SLOW_MS", "FAULT_SLOW_FRACTION",
                         "the share of / requests that are slow, 0.0-1.0 (0: none)")
        return cls(
            port=int(port_raw),
            bind=bind,
            # The Dockerfile bakes APP_VERSION (default: the commit) into the image.
            version=_get(env, "APP_VERSION") or commit or "dev",
            commit=commit,
            track=_get(env, "APP_TRACK"),
            error_rate=error_rate,
            errors_after_s=errors_after_s,
            latency_ms=_number(env, "FAULT_LATENCY_MS", 0.0, None),
            slow_fraction=slow_fraction,
            slow_ms=slow_ms,
            ready_never=ready_raw.lower() in _TRUE,
            crash_after_s=_number(env, "FAULT_CRASH_AFTER_S", 0.0, None),
            crash_after_requests=int(crash_requests_raw or 0),
            seed=int(seed_raw) if seed_raw else None,
        )

    def active_faults(self) -> str:
        """For the start-up log line, e.g. "error_rate=0.1,ready_never" or "none"."""
        erroring, slowing = self.error_rate > 0, self.slow_fraction > 0
        faults = [f"error_rate={self.error_rate:g}" if erroring else "",
                  f"errors_after_s={self.errors_after_s:g}" if erroring and self.errors_after_s else "",
                  f"latency_ms={self.latency_ms:g}" if self.latency_ms else "",
                  f"slow_fraction={self.slow_fraction:g},slow_ms={self.slow_ms:g}" if slowing else "",
                  "ready_never" if self.ready_never else "",
                  f"crash_after_s={self.crash_after_s:g}" if self.crash_after_s else "",
                  f"crash_after_requests={self.crash_after_requests}" if self.crash_after_requests else ""]
        return ",".join(f for f in faults if f) or "none"


def settings_view(env: Mapping[str, str], config_dir: str | None) -> dict:
    """What the release configured, as ``/config`` shows it: the flags' values, and of every ``SAMPLE_*``
    variable and every file in ``CONFIG_DIR`` a SHA-256 digest, never the value (some are secrets)."""
    files = {}
    if config_dir and os.path.isdir(config_dir):
        for name in sorted(os.listdir(config_dir)):
            path = os.path.join(config_dir, name)
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    files[name] = hashlib.sha256(handle.read()).hexdigest()
    return {
        "config_version": env.get("CONFIG_VERSION", ""),
        "flags": {k: env[k] for k in sorted(env) if k.startswith("FLAG_")},
        "sha256": {k: hashlib.sha256(env[k].encode()).hexdigest() for k in sorted(env) if k.startswith("SAMPLE_")},
        "files": files,
    }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counters and latency histograms, rendered as Prometheus text 0.0.4."""

    def __init__(self, version: str, commit: str, start_time: float | None = None) -> None:
        self._lock = threading.Lock()  # handler threads update concurrently
        self._requests: dict[tuple[str, str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}  # per path, not cumulative; last is +Inf
        self._sums: dict[str, float] = {}
        self.version, self.commit = version, commit
        self.start_time = time.time() if start_time is None else start_time

    def observe(self, method: str, path: str, code: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        path = path if path in ROUTES else "other"
        with self._lock:
            key = (str(code), method, path)
            self._requests[key] = self._requests.get(key, 0) + 1
            counts = self._buckets.setdefault(path, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1  # first bucket with le >= seconds
            self._sums[path] = self._sums.get(path, 0.0) + seconds

    def render(self) -> str:
        with self._lock:  # copy under the lock, format outside it
            requests = sorted(self._requests.items())
            hists = sorted((p, list(c), self._sums[p]) for p, c in self._buckets.items())
        out = ["# HELP http_requests_total HTTP requests handled, by status code, method and route.",
               "# TYPE http_requests_total counter"]
        out += [f'http_requests_total{{code="{c}",method="{m}",path="{p}"}} {n}' for (c, m, p), n in requests]
        out += ["# HELP http_request_duration_seconds Time to handle an HTTP request, up to writing the response, by route.",
                "# TYPE http_request_duration_seconds histogram"]
        for path, counts, total in hists:
            cumulative = 0
            for le, n in zip([repr(b) for b in BUCKETS] + ["+Inf"], counts):
                cumulative += n
                out.append(f'http_request_duration_seconds_bucket{{path="{path}",le="{le}"}} {cumulative}')
            out.append(f'http_request_duration_seconds_sum{{path="{path}"}} {total!r}')
            out.append(f'http_request_duration_seconds_count{{path="{path}"}} {cumulative}')
        out += ["# HELP app_info Build of the running service; the value is always 1.",
                "# TYPE app_info gauge",
                f'app_info{{version="{_label(self.version)}",commit="{_label(self.commit)}"}} 1',
                "# HELP process_start_time_seconds Start time of the process since the Unix epoch in seconds.",
                "# TYPE process_start_time_seconds gauge",
                f"process_start_time_seconds {self.start_time!r}"]
        return "\n".join(out) + "\n"


class Faults:
    """Decides injected failures; seeded (FAULT_SEED) so tests are repeatable."""

    def __init__(self, error_rate: float, seed: int | None = None, *, slow_fraction: float = 0.0) -> None:
        self.error_rate, self.slow_fraction = error_rate, slow_fraction
        self._rng = random.Random(seed)  # seed None: from OS entropy
        # A stream of its own: turning the slow path on leaves a seed's errors where they were.
        self._slow_rng = random.Random(None if seed is None else f"slow:{seed}")
        self._lock = threading.Lock()

    def should_fail(self) -> bool:
        if self.error_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.error_rate  # random() < 1.0 always

    def is_slow(self) -> bool:
        if self.slow_fraction <= 0:
            return False
        with self._lock:
            return self._slow_rng.random() < self.slow_fraction


def _json(status: int, body: dict) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode() + b"\n"


class App:
    """What the handler threads share: config, metrics, faults and run state.

    :param clock: seconds, monotonic; the fault deadlines are read from it
        (tests pass a fake one to step over FAULT_ERRORS_AFTER_S).
    """

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic, settings: dict | None = None) -> None:
        self.config = config
        self.clock = clock
        self.metrics = Metrics(config.version, config.commit)
        self.faults = Faults(config.error_rate, config.seed, slow_fraction=config.slow_fraction)
        self.hostname = socket.gethostname()
        self.settings = settings or settings_view({}, None)
        self.started = clock()
        self.crash_at = self.started + config.crash_after_s if config.crash_after_s > 0 else None
        self.errors_at = self.started + config.errors_after_s if config.errors_after_s > 0 else None
        self.draining = False  # set on SIGTERM so load balancers stop sending traffic
        self.served = 0  # answers to / (FAULT_CRASH_AFTER_REQUESTS counts them)
        self._served_lock = threading.Lock()

    def count_served(self) -> bool:
        """Count one answer to /; True when it is the one FAULT_CRASH_AFTER_REQUESTS ends the process at."""
        with self._served_lock:
            self.served += 1
            return self.served == self.config.crash_after_requests

    def alive(self) -> bool:
        # Once the crash deadline passes the process is (about to be) gone.
        if self.config.crash_after_requests and self.served >= self.config.crash_after_requests:
            return False
        return self.crash_at is None or self.clock() < self.crash_at

    def erroring(self) -> bool:
        """FAULT_ERROR_RATE is in force: no FAULT_ERRORS_AFTER_S, or its delay is over."""
        return self.errors_at is None or self.clock() >= self.errors_at

    def respond(self, path: str) -> tuple[int, str, bytes]:
        c = self.config
        if path == "/":
            if c.latency_ms:
                time.sleep(c.latency_ms / 1000)
            if self.faults.is_slow():
                time.sleep(c.slow_ms / 1000)
            # Before the delay no decision is drawn: a seed's errors are the same from when they start.
            if self.erroring() and self.faults.should_fail():
                return _json(500, {"error": "injected fault (FAULT_ERROR_RATE)"})
            return _json(200, {"service": SERVICE, "version": c.version, "commit": c.commit,
                               "track": c.track, "hostname": self.hostname,
                               "config_version": self.settings["config_version"], "flags": self.settings["flags"]})
        if path == "/config":
            return _json(200, self.settings)
        if path == "/metrics":
            return 200, METRICS_CONTENT_TYPE, self.metrics.render().encode()
        if path in ("/health", "/live"):
            ok = self.alive()
        elif path == "/ready":
            ok = self.alive() and not c.ready_never and not self.draining
        else:
            return _json(404, {"error": "not found", "path": path})
        return _json(200 if ok else 503, {"status": "ok" if ok else "unavailable", "version": c.version})


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive, for load generators and HAProxy
    server_version = SERVICE
    # Headers and body are two writes; with Nagle on, a keep-alive client's
    # delayed ACK would add ~40 ms to every response.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        start = time.perf_counter()
        path = urlsplit(self.path).path
        headers = {}
        if self.command in ("GET", "HEAD"):
            status, content_type, body = self.server.app.respond(path)
        else:
            # The request body is never read, so the connection cannot be reused.
            status, content_type, body = _json(405, {"error": "method not allowed"})
            headers = {"Allow": "GET, HEAD", "Connection": "close"}
            self.close_connection = True
        # Counted before the first byte goes out: a client holding its answer
        # always finds it in /metrics. The duration is the time to handle it,
        # up to writing; a slow reader's socket does not count as the service's.
        self.server.app.metrics.observe(self.command, path, status, time.perf_counter() - start)
        try:
            self.send_response(status)
            headers.update({"Content-Type": content_type, "Content-Length": str(len(body))})
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":  # HEAD: same headers as GET, no body
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away
        if path == "/" and self.server.app.config.crash_after_requests and self.server.app.count_served():
            # After answering: the version took real traffic, then dies, as one that crashes under load.
            print(f"{SERVICE} crashing on purpose: FAULT_CRASH_AFTER_REQUESTS={self.server.app.served}", flush=True)
            os._exit(1)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # no access log: a line per request swamps container logs under load (errors still logged)


class Server(ThreadingHTTPServer):
    # Daemon threads: idle keep-alive connections must not block shutdown.
    daemon_threads = True

    def __init__(self, app: App) -> None:
        self.app = app
        if ipaddress.ip_address(app.config.bind).version == 6:
            self.address_family = socket.AF_INET6
        super().__init__((app.config.bind, app.config.port), Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can
        # stall start-up for seconds on machines without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


def make_server(config: Config, clock: Callable[[], float] = time.monotonic, settings: dict | None = None) -> Server:
    """Bind (port 0 picks a free port) but do not serve; call serve_forever(). ``settings``: settings_view()'s."""
    return Server(App(config, clock, settings))


def _crash(delay: float, after: float) -> None:
    time.sleep(max(0.0, delay))
    print(f"{SERVICE} crashing on purpose: FAULT_CRASH_AFTER_S={after:g}", flush=True)
    os._exit(1)  # abrupt, like a real crash: no cleanup, no graceful shutdown


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        config = Config.from_env(environ)
    except ConfigError as exc:
        print(f"{SERVICE}: configuration error: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        server = make_server(config, settings=settings_view(environ, environ.get("CONFIG_DIR")))
    except OSError as exc:
        print(f"{SERVICE}: cannot listen on {config.bind}:{config.port}: {exc}", file=sys.stderr, flush=True)
        return 1
    app = server.app
    if app.crash_at is not None:
        args = (app.crash_at - app.clock(), config.crash_after_s)
        threading.Thread(target=_crash, args=args, daemon=True, name="crash").start()

    received: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        # As PID 1 in a container we only see SIGTERM because a handler is set.
        # shutdown() waits for serve_forever() to return, which runs in this
        # (main) thread, so it has to be called from another one.
        app.draining = True
        received.append(signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"{SERVICE} listening version={config.version} commit={config.commit or '-'} "
          f"track={config.track or '-'} bind={host} port={port} faults={config.active_faults()}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print(f"{SERVICE} stopped on {received[0] if received else 'shutdown'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

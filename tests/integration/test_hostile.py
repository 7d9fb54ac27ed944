"""Hostile resources: one team's custom resource, however wrong, costs other teams nothing.

One real control plane, one real operator (watching a hostile namespace and a healthy one),
real servers on 127.0.0.1. Every case is either refused by the API server with a readable
message, or becomes Stalled/Down (Unavailable for a Backend) with a reason, and

- the healthy Probe in the other namespace keeps its schedule (no run missed: the gaps between
  the requests its target receives stay under two intervals),
- the event loop never spends 250 ms or more in Pitwall's code, and 100 ms at most once
  (``pitwall_event_loop_busy_lag_seconds``:
  the lag of ``pitwall_event_loop_lag_seconds`` that the loop's thread spent on CPU, so a
  loaded test machine's scheduling delays do not count),
- no request reaches the canary server the operator's address policy denies (127.0.0.2),
- no secret shows in any object, Event or log line, in any encoding,
- a notice that names a product whose displayName carries CR/LF is mailed once, not in a loop,
- the operator's peak memory stays under the Deployment's 512Mi limit.

Everything hostile is applied at once and judged in parallel, so the suite takes about as long
as its slowest verdict.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pitwall_testing.cluster import free_port
from tests.conftest import Kubectl, Operator, condition, eventually
from tests.helpers.smtp import smtp_server

API = "pitwall.dev/v1alpha1"
HEALTHY_INTERVAL = 2.0  # the operator's --min-probe-interval in this suite
CANARY_HOST = "127.0.0.2"  # denied by the operator's policy (PITWALL_PROBE_DENY)
SECRET = "s3cr3t-Hostile-Value"  # stored with a trailing newline, as kubectl create --from-file gives
REDOS = "a" * 30 + "!"
FAKE_CREDENTIALS = '{"AccessKeyId": "AKIAFAKEHOSTILE0001", "SecretAccessKey": "fake-hostile-secret-key"}'
VERDICT_TIMEOUT = 90


# ------------------------------------------------------------------ real servers on loopback


class Server:
    """A threaded HTTP server with the responses the hostile cases need; records every request."""

    def __init__(self, host: str = "127.0.0.1"):
        self.requests: list[tuple[float, str, str]] = []  # (monotonic time, method, path)
        self.lock = threading.Lock()
        self.bomb = _gzip_bomb()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _record(self):
                with server.lock:
                    server.requests.append((time.monotonic(), self.command, self.path))

            def do_GET(self):  # noqa: N802 - http.server's API
                self._record()
                path, _, query = self.path.partition("?")
                route = getattr(server, "route_" + path.strip("/").replace("-", "_"), None)
                if route is None:
                    return self._send(200, b"ok")
                route(self, urllib.parse.parse_qs(query))

            def do_POST(self):  # noqa: N802
                self._record()
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path.startswith("/fake-500"):
                    return self._send(500, FAKE_CREDENTIALS.encode(), "application/json")
                self._send(200, b'{"ok": true}', "application/json")

            def _send(self, status, body: bytes, content_type="text/plain", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.handler = Handler
        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def times(self, path: str) -> list[float]:
        with self.lock:
            return [t for t, _, p in self.requests if p == path]

    # routes: route_<path>(handler, query)
    def route_redos(self, h, _q):
        h._send(200, REDOS.encode(), headers=[("X-Redos", REDOS)])

    def route_redos_json(self, h, _q):
        h._send(200, json.dumps({"s": REDOS}).encode(), "application/json")

    def route_gzip_bomb(self, h, _q):
        h._send(200, self.bomb, "application/json", headers=[("Content-Encoding", "gzip, gzip")])

    def route_deep_json(self, h, _q):
        h._send(200, b"[" * 200_000 + b"]" * 200_000, "application/json")

    def route_big_json(self, h, _q):
        body = json.dumps({f"k{i}": {"a": [1, 2, {"b": list(range(20))}]} for i in range(3000)}).encode()
        h._send(200, body, "application/json")

    def route_huge(self, h, _q):
        h._send(200, b"x" * (5 * 1024 * 1024))

    def route_slow(self, h, _q):
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        try:
            for _ in range(60):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(1)
        except OSError:
            pass

    def route_redirect(self, h, q):
        h._send(302, b"", headers=[("Location", q["to"][0])])

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _gzip_bomb() -> bytes:
    """256 MiB of zeros, gzipped twice: a few KB on the wire (Content-Encoding: gzip, gzip)."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1024 * 1024)
    once = b"".join(inner.compress(chunk) for _ in range(256)) + inner.flush()
    return gzip.compress(once, 9)


# ------------------------------------------------------------------ the cases


def probe(name: str, url: str, labels: dict | None = None, **spec) -> dict:
    spec = {"interval": "2s", "timeout": "1s", "failureThreshold": 1, **spec}
    return {
        "apiVersion": API,
        "kind": "Probe",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"target": {"url": url}, **spec} if "target" not in spec else spec,
    }


def rule(name: str, receivers: list[dict], **spec) -> dict:
    return {
        "apiVersion": API,
        "kind": "AlertRule",
        "metadata": {"name": name},
        "spec": {
            "severity": "high",
            "selector": {"kinds": ["Probe"], "matchLabels": {"hostile": name}},
            "when": {"for": "0s"},
            "receivers": receivers,
            **spec,
        },
    }


def window(name: str, **spec) -> dict:
    start = datetime.now(UTC) + timedelta(minutes=30)
    base = {
        "reason": "Hostile window",
        "emergency": True,
        "emergencyReason": "test",
        "schedule": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": "1h"},
        "targets": {"backends": ["nothing-here"]},
    }
    for key, value in spec.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return {"apiVersion": API, "kind": "MaintenanceWindow", "metadata": {"name": name}, "spec": base}


def backend(name: str, **spec) -> dict:
    return {
        "apiVersion": API,
        "kind": "Backend",
        "metadata": {"name": name},
        "spec": {"displayName": name, **spec},
    }


def product(name: str, **spec) -> dict:
    versions = spec.pop("versions", [{"name": "v1", "image": "registry.example.com/x:1", "replicas": 0}])
    return {
        "apiVersion": API,
        "kind": "ApiProduct",
        "metadata": {"name": name},
        "spec": {"displayName": name, "versions": versions, **spec},
    }


def secret(name: str, value: str, **labels) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "stringData": {"value": value},
    }


# Refused by the API server: (id, manifest, words the refusal must contain)
REFUSED = [
    (
        "probe-interval-zero",
        probe("r1", "http://127.0.0.1:1/", interval="0s"),
        '"0s" is below the minimum 1s',
    ),
    (
        "probe-interval-1ms",
        probe("r2", "http://127.0.0.1:1/", interval="1ms"),
        '"1ms" is below the minimum 1s',
    ),
    (
        "probe-interval-zero-days",
        probe("r3", "http://127.0.0.1:1/", interval="0d"),
        "is below the minimum 1s",
    ),
    (
        "probe-interval-fraction-of-a-day",
        probe("r40", "http://127.0.0.1:1/", interval="0.01d"),
        '"0.01d" is below the minimum 1s, or under 0.1d: write durations under 2.4h in h, m, s or ms',
    ),
    ("probe-interval-words", probe("r4", "http://127.0.0.1:1/", interval="5 minutes"), "is not a duration"),
    (
        "probe-timeout-zero",
        probe("r5", "http://127.0.0.1:1/", timeout="0s"),
        '"0s" is below the minimum 100ms',
    ),
    (
        "probe-timeout-above-interval",
        probe("r6", "http://127.0.0.1:1/", interval="5s", timeout="10s"),
        "timeout must not be longer than interval",
    ),
    (
        "probe-two-targets",
        {
            **probe("r7", "http://127.0.0.1:1/"),
            "spec": {"target": {"url": "http://127.0.0.1:1/", "apiProduct": {"name": "p", "version": "v1"}}},
        },
        "set exactly one of target.apiProduct and target.url",
    ),
    (
        "probe-ftp-proxy",
        probe("r8", "http://127.0.0.1:1/", proxy="ftp://127.0.0.1:21"),
        "must be an http://, https:// or socks5:// proxy URL",
    ),
    (
        "probe-21-steps",
        probe("r9", "http://127.0.0.1:1/", steps=[{"name": f"s{i}"} for i in range(21)]),
        "must have at most 20 items",
    ),
    (
        "probe-duplicate-steps",
        probe("r10", "http://127.0.0.1:1/", steps=[{"name": "a"}, {"name": "a"}]),
        "step names must be unique",
    ),
    (
        "probe-huge-body",
        probe("r11", "http://127.0.0.1:1/", steps=[{"name": "a", "request": {"body": "x" * 70000}}]),
        "Too long",
    ),
    (
        "probe-header-value-5k",
        probe(
            "r36", "http://127.0.0.1:1/", steps=[{"name": "a", "request": {"headers": {"X-Big": "x" * 5000}}}]
        ),
        "Too long",
    ),
    (
        "probe-33-headers",
        probe(
            "r37",
            "http://127.0.0.1:1/",
            steps=[{"name": "a", "request": {"headers": {f"X-{i}": "x" for i in range(33)}}}],
        ),
        "Too many",
    ),
    (
        "probe-capture-name",
        probe("r12", "http://127.0.0.1:1/", steps=[{"name": "a", "capture": {"a-b": "$.x"}}]),
        "capture variable names must be letters, digits and underscores",
    ),
    (
        "backend-health-interval-zero",
        backend("r13", health={"url": "http://127.0.0.1:1/", "interval": "0s"}),
        "is below the minimum 1s",
    ),
    (
        "backend-health-timeout-above-interval",
        backend("r14", health={"url": "http://127.0.0.1:1/", "interval": "30s", "timeout": "1m"}),
        "timeout must not be longer than interval",
    ),
    (
        "backend-health-and-proberef",
        backend("r15", health={"url": "http://127.0.0.1:1/"}, probeRef={"name": "x"}),
        "set at most one of health and probeRef",
    ),
    (
        "alertrule-repeat-1ms",
        rule("r16", [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:1/"}], repeatInterval="1ms"),
        '"1ms" is below the minimum 1m (use 0s to turn it off)',
    ),
    (
        "alertrule-escalation-zero",
        rule(
            "r17",
            [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:1/"}],
            escalation=[{"after": "0s", "receivers": ["a"]}],
        ),
        '"0s" is below the minimum 1s',
    ),
    (
        "alertrule-digest-100ms",
        rule(
            "r18",
            [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:1/"}],
            digest={"interval": "100ms", "receivers": ["a"]},
        ),
        '"100ms" is below the minimum 1s',
    ),
    (
        "alertrule-unknown-escalation-receiver",
        rule(
            "r19",
            [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:1/"}],
            escalation=[{"after": "5m", "receivers": ["nobody"]}],
        ),
        "escalation receivers must name entries of spec.receivers",
    ),
    (
        "alertrule-slack-url-in-spec",
        rule(
            "r20",
            [
                {
                    "name": "a",
                    "type": "slack",
                    "url": "http://127.0.0.1:1/",
                    "secretRef": {"name": "s", "key": "k"},
                }
            ],
        ),
        "url is only for opsgenie, pagerduty and webhook receivers",
    ),
    (
        "alertrule-email-without-to",
        rule("r21", [{"name": "a", "type": "email", "secretRef": {"name": "s", "key": "k"}}]),
        "an email receiver needs email.to",
    ),
    (
        "alertrule-summary-width-bomb",
        rule(
            "r33",
            [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:1/"}],
            summary="{kind:>999999999} is down",
        ),
        "summary placeholders take no format spec",
    ),
    (
        "alertrule-33-labels",
        rule(
            "r34",
            [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:1/"}],
            selector={"kinds": ["Probe"], "matchLabels": {f"l{i}": "x" for i in range(33)}},
        ),
        "Too many",
    ),
    (
        "alertrule-21-receivers",
        rule("r35", [{"name": f"a{i}", "type": "webhook", "url": "http://127.0.0.1:1/"} for i in range(21)]),
        "Too many",
    ),
    (
        "alertrule-unknown-receiver-type",
        rule("r22", [{"name": "a", "type": "carrier-pigeon", "url": "http://x/"}]),
        "Unsupported value",
    ),
    ("window-duration-zero", window("r23", schedule={"duration": "0s"}), '"0s" is below the minimum 1s'),
    (
        "window-start-and-cron",
        window("r24", schedule={"cron": "0 22 * * SAT"}),
        "set exactly one of schedule.start (one-off) and schedule.cron (recurring)",
    ),
    (
        "window-cron-words",
        {
            **window("r25"),
            "spec": {**window("r25")["spec"], "schedule": {"cron": "every saturday", "duration": "1h"}},
        },
        "is not a cron schedule",
    ),
    (
        "window-no-targets",
        {**window("r26"), "spec": {**window("r26")["spec"], "targets": {}}},
        "a maintenance window needs at least one target",
    ),
    (
        "window-emergency-without-reason",
        {**window("r27"), "spec": {k: v for k, v in window("r27")["spec"].items() if k != "emergencyReason"}},
        "an emergency window needs emergencyReason",
    ),
    (
        "product-sunset-on-published",
        product("r28", versions=[{"name": "v1", "image": "x:1", "sunsetAt": "2027-01-01T00:00:00Z"}]),
        "sunsetAt is only allowed when lifecycle is deprecated",
    ),
    ("product-name-starts-with-digit", product("9lives"), "an ApiProduct name must start with a letter"),
    (
        "product-21-versions",
        product("r30", versions=[{"name": f"v{i}", "image": "x:1"} for i in range(21)]),
        "must have at most 20 items",
    ),
    ("product-display-name-10k", product("r31", displayName="x" * 10_000), "Too long"),
    ("product-201-consumers", product("r38", consumers=[{"name": f"c{i}"} for i in range(201)]), "Too many"),
    (
        "window-11-receivers",
        window(
            "r39",
            notice={
                "receivers": [
                    {"name": f"w{i}", "type": "webhook", "url": "http://127.0.0.1:1/"} for i in range(11)
                ]
            },
        ),
        "Too many",
    ),
    (
        "product-unknown-consumer-version",
        product("r32", consumers=[{"name": "c", "versions": ["v9"]}]),
        "consumers[].versions must name versions listed in spec.versions",
    ),
]


@dataclass(frozen=True)
class Addresses:
    """Where the servers and the operator listen (placeholders while tests are collected)."""

    target: str = "http://127.0.0.1:1"
    canary_port: int = 1
    refused_port: int = 1
    internal_port: int = 1
    metrics_port: int = 1
    statuspage_port: int = 1
    api_server: str = "https://127.0.0.1:1"

    @property
    def canary(self) -> str:
        return f"http://{CANARY_HOST}:{self.canary_port}"


@dataclass
class World:
    hostile: Kubectl
    healthy: Kubectl
    operator: Operator
    target: Server
    canary: Server
    smtp: list
    cases: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> (kind, name, words)
    lag_before: dict = field(default_factory=dict)
    started: float = 0.0


def verdict_cases(a: Addresses) -> list[tuple[str, dict, str]]:
    """(id, manifest, what the verdict's reason or message must contain, case-insensitive)."""
    t = a.target
    secret_header = {"name": "a", "request": {"headers": {"X-Key": "${secret:newline/value}"}}}
    return [
        # floors of this operator (--min-probe-interval 2s ...) above the CRDs' own
        ("probe-below-operator-floor", probe("floor", t + "/ok", interval="1s"), "below the minimum of 2s"),
        (
            "probe-timeout-above-interval-in-days",
            probe("days", t + "/ok", interval="1d", timeout="2d"),
            "longer than the interval",
        ),
        # bounded work per check
        (
            "probe-redos-body-regex",
            probe(
                "redos-body", t + "/redos", steps=[{"name": "a", "expect": {"body": {"regex": "^(a+)+$"}}}]
            ),
            "",
        ),
        (
            "probe-redos-json-matches",
            probe(
                "redos-json",
                t + "/redos-json",
                steps=[{"name": "a", "expect": {"json": [{"path": "$.s", "matches": "^(a+)+$"}]}}],
            ),
            "",
        ),
        (
            "probe-redos-header-matches",
            probe(
                "redos-header",
                t + "/redos",
                steps=[{"name": "a", "expect": {"headers": [{"name": "X-Redos", "matches": "^(a|aa)+$"}]}}],
            ),
            "",
        ),
        (
            "probe-gzip-bomb",
            probe(
                "gzip-bomb",
                t + "/gzip-bomb",
                steps=[{"name": "a", "expect": {"json": [{"path": "$.a", "exists": True}]}}],
            ),
            "",
        ),
        (
            "probe-deep-json",
            probe(
                "deep-json",
                t + "/deep-json",
                steps=[{"name": "a", "expect": {"json": [{"path": "$[0]", "exists": True}]}}],
            ),
            "",
        ),
        (
            "probe-recursive-jsonpath",
            probe(
                "jsonpath",
                t + "/big-json",
                steps=[{"name": "a", "expect": {"json": [{"path": "$..*..*", "equals": "never"}]}}],
            ),
            "",
        ),
        (
            "probe-huge-body",
            probe("huge", t + "/huge", steps=[{"name": "a", "expect": {"body": {"contains": "y"}}}]),
            "",
        ),
        (
            "probe-slowloris",
            probe("slow", t + "/slow", steps=[{"name": "a", "expect": {"body": {"contains": "y"}}}]),
            "timed out",
        ),
        (
            "probe-non-ascii-header",
            probe(
                "non-ascii", t + "/ok", steps=[{"name": "a", "request": {"headers": {"X-Name": "Grüße ✓"}}}]
            ),
            "",
        ),
        ("probe-socks5-proxy", probe("socks", t + "/ok", proxy="socks5://127.0.0.1:9"), ""),
        (
            "probe-invalid-regex",
            probe("bad-regex", t + "/ok", steps=[{"name": "a", "expect": {"body": {"regex": "("}}}]),
            "",
        ),
        (
            "probe-invalid-jsonpath",
            probe(
                "bad-jsonpath",
                t + "/ok",
                steps=[{"name": "a", "expect": {"json": [{"path": "$[", "exists": True}]}}],
            ),
            "",
        ),
        (
            "probe-undefined-variable",
            probe(
                "undefined-var",
                t + "/ok",
                steps=[{"name": "a", "request": {"headers": {"Authorization": "Bearer ${nothing}"}}}],
            ),
            "",
        ),
        (
            "probe-connection-refused",
            probe("refused", f"http://127.0.0.1:{a.refused_port}/", labels={"hostile": "alert-canary"}),
            "",
        ),
        (
            "probe-missing-secret",
            probe(
                "no-secret",
                t + "/ok",
                steps=[{"name": "a", "request": {"headers": {"X-Key": "${secret:absent/value}"}}}],
            ),
            "absent",
        ),
        (
            "probe-missing-product",
            probe("no-product", "", target={"apiProduct": {"name": "ghost", "version": "v1"}}),
            "ghost",
        ),
        ("probe-secret-with-newline", probe("newline-secret", t + "/ok", steps=[secret_header]), ""),
        (
            "probe-secret-not-opted-in",
            probe(
                "not-opted-in",
                t + "/ok",
                steps=[{"name": "a", "request": {"headers": {"X-Key": "${secret:unlabelled/value}"}}}],
            ),
            "pitwall.dev/",
        ),
        # the address policy, in several spellings, and the operator's own doors
        (
            "probe-metadata-address",
            probe("metadata", "http://169.254.169.254/latest/meta-data/"),
            "169.254.169.254",
        ),
        ("probe-canary", probe("canary", a.canary + "/"), "denied"),
        (
            "probe-canary-mapped-v6",
            probe("canary-v6", f"http://[::ffff:{CANARY_HOST}]:{a.canary_port}/"),
            "denied",
        ),
        ("probe-canary-decimal", probe("canary-decimal", f"http://2130706434:{a.canary_port}/"), "denied"),
        ("probe-canary-short", probe("canary-short", f"http://127.2:{a.canary_port}/"), "denied"),
        ("probe-canary-nat64", probe("canary-nat64", f"http://[64:ff9b::7f00:2]:{a.canary_port}/"), "denied"),
        ("probe-canary-proxy", probe("canary-proxy", t + "/ok", proxy=a.canary), "denied"),
        (
            "probe-canary-redirect",
            probe(
                "canary-redirect",
                t + "/redirect?to=" + urllib.parse.quote(a.canary + "/"),
                followRedirects=True,
            ),
            "denied",
        ),
        (
            "probe-operator-internal-view",
            probe("internal-view", f"http://127.0.0.1:{a.internal_port}/api/v1/internal"),
            "denied",
        ),
        (
            "probe-operator-status-page",
            probe("status-page", f"http://127.0.0.1:{a.statuspage_port}/"),
            "denied",
        ),
        ("probe-operator-metrics", probe("metrics", f"http://127.0.0.1:{a.metrics_port}/metrics"), "denied"),
        (
            "probe-api-server",
            probe("api-server", a.api_server + "/api", tls={"insecureSkipVerify": True}),
            "denied",
        ),
        # backends
        (
            "backend-below-operator-floor",
            backend("floor", health={"url": t + "/ok", "interval": "1s"}),
            "below the minimum of 2s",
        ),
        (
            "backend-metadata-address",
            backend("metadata", health={"url": "http://169.254.169.254/", "interval": "2s"}),
            "169.254.169.254",
        ),
        ("backend-missing-probe", backend("ghost-probe", probeRef={"name": "ghost"}), "ghost"),
        (
            "backend-gzip-bomb",
            backend(
                "gzip-bomb",
                health={
                    "url": t + "/gzip-bomb",
                    "interval": "2s",
                    "steps": [{"name": "a", "expect": {"json": [{"path": "$.a", "exists": True}]}}],
                },
            ),
            "",
        ),
        # alert rules
        (
            "alertrule-below-operator-floor",
            rule("floor", [{"name": "a", "type": "webhook", "url": t + "/hook"}], repeatInterval="1m"),
            "--min-repeat-interval",
        ),
        (
            "alertrule-summary-width-bomb-escaped",
            rule(
                "summary-bomb",
                [{"name": "a", "type": "webhook", "url": t + "/hook"}],
                summary="{{{kind:>999999999}}}",
            ),
            "takes no format spec",
        ),
        (
            "alertrule-missing-secret",
            rule(
                "no-secret", [{"name": "a", "type": "slack", "secretRef": {"name": "absent", "key": "url"}}]
            ),
            "absent",
        ),
        # maintenance windows
        (
            "window-below-operator-floor",
            window("floor", schedule={"duration": "30s"}),
            "--min-window-duration",
        ),
        (
            "window-unknown-time-zone",
            {
                **window("mars"),
                "spec": {
                    **window("mars")["spec"],
                    "schedule": {"cron": "0 22 * * SAT", "duration": "1h", "timeZone": "Mars/Olympus_Mons"},
                },
            },
            "Mars/Olympus_Mons",
        ),
        (
            "window-cron-never-fires",
            {
                **window("never"),
                "spec": {**window("never")["spec"], "schedule": {"cron": "0 0 31 2 *", "duration": "1h"}},
            },
            "never",
        ),
        (
            "window-overlapping-occurrences",
            {
                **window("overlap"),
                "spec": {**window("overlap")["spec"], "schedule": {"cron": "@hourly", "duration": "2h"}},
            },
            "overlap",
        ),
        # an ApiProduct whose version env cannot become a Deployment
        (
            "product-bogus-env-source",
            product(
                "bogus-env",
                versions=[
                    {
                        "name": "v1",
                        "image": "x:1",
                        "replicas": 0,
                        "env": [{"name": "A", "valueFrom": {"bogus": {"x": 1}}}],
                    }
                ],
            ),
            "",
        ),
    ]


KINDS = {
    "Probe": "probe",
    "Backend": "backend",
    "AlertRule": "alertrule",
    "MaintenanceWindow": "maintenancewindow",
    "ApiProduct": "apiproduct",
}


@pytest.fixture(scope="module")
def world(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    namespaces = [f"hostile-{int(time.time() * 1000) % 10**8}", f"healthy-{int(time.time() * 1000) % 10**8}"]
    for ns in namespaces:
        cluster.kubectl("create", "namespace", ns)
    hostile, healthy = (Kubectl(cluster, ns) for ns in namespaces)
    with Server() as target, Server(CANARY_HOST) as canary, smtp_server() as (smtp_port, received):
        op = Operator(
            cluster,
            workdir,
            namespace=hostile.namespace,
            extra_env={"PITWALL_PROBE_DENY": f"{CANARY_HOST}/32"},
            extra_args=[
                "--namespace",
                healthy.namespace,
                "--min-probe-interval",
                "2s",
                "--min-repeat-interval",
                "2m",
                "--min-window-duration",
                "1m",
            ],
        ).start()
        w = World(hostile, healthy, op, target, canary, received)
        try:
            healthy.apply(
                probe(
                    "steady", target.url + "/healthy", interval=f"{HEALTHY_INTERVAL:.0f}s", failureThreshold=3
                )
            )
            eventually(
                lambda: ((healthy.get("probe", "steady") or {}).get("status") or {}).get("state") == "Up",
                timeout=60,
                message="the healthy probe is Up",
            )
            w.lag_before = lag_buckets(op)
            w.started = time.monotonic()
            _apply_hostile(w, smtp_port)
            yield w
        finally:
            op.stop()
            for ns in namespaces:
                cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _apply_hostile(w: World, smtp_port: int) -> None:
    k = w.hostile
    docs = [
        secret("newline", SECRET + "\n", **{"pitwall.dev/use": "probes"}),
        secret("unlabelled", "unlabelled-" + SECRET),
        secret("smtp", f"smtp://127.0.0.1:{smtp_port}", **{"pitwall.dev/use": "receivers"}),
        secret("opsgenie-key", "opsgenie-" + SECRET, **{"pitwall.dev/use": "receivers"}),
    ]
    where = Addresses(
        w.target.url,
        w.canary.port,
        free_port(),
        w.operator.internal_port,
        w.operator.metrics_port,
        w.operator.statuspage_port,
        w.operator.cluster.server,
    )
    for case_id, manifest, words in verdict_cases(where):
        docs.append(manifest)
        w.cases[case_id] = (manifest["kind"], manifest["metadata"]["name"], words)
    # Receivers and notices: a denied address, a receiver answering 500 with credentials, a
    # display name with CR/LF mailed to a consumer.
    docs += [
        rule(
            "alert-canary",
            [
                {"name": "canary", "type": "webhook", "url": w.canary.url + "/hook"},
                {"name": "leaky", "type": "webhook", "url": w.target.url + "/fake-500"},
                {
                    "name": "metadata",
                    "type": "opsgenie",
                    "url": "http://169.254.169.254",
                    "secretRef": {"name": "opsgenie-key", "key": "value"},
                },
            ],
        ),
        product(
            "crlf",
            displayName="Payments\r\nBcc: victim@example.com",
            consumers=[
                {
                    "name": "acme",
                    "contact": {"email": "ops@acme.example", "webhook": w.canary.url + "/consumer"},
                }
            ],
        ),
        window(
            "crlf-notice",
            targets={"apiProducts": {"names": ["crlf"]}},
            notice={
                "receivers": [{"name": "canary", "type": "webhook", "url": w.canary.url + "/notice"}],
                "consumerEmail": {
                    "secretRef": {"name": "smtp", "key": "value"},
                    "from": "Ops\r\nBcc: x@example.com",
                },
            },
        ),
    ]
    k.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def lag_buckets(op: Operator) -> dict[str, dict[str, float]]:
    """metric -> {le: count} for the two event-loop lag histograms."""
    text = op.metrics()
    return {
        metric: {
            le: float(v)
            for le, v in re.findall(rf'^{metric}_bucket\{{le="([^"]+)"\}} ([0-9.e+]+)$', text, re.M)
        }
        for metric in ("pitwall_event_loop_lag_seconds", "pitwall_event_loop_busy_lag_seconds")
    }


def lags_over(before: dict, after: dict, metric: str, le: str = "0.1") -> float:
    """Samples of ``metric`` above ``le`` seconds between the two readings."""
    return (after[metric]["+Inf"] - after[metric][le]) - (before[metric]["+Inf"] - before[metric][le])


def verdict(obj: dict | None) -> tuple[str, str] | None:
    """(state, reason and message) once the object is Stalled, Down or Unavailable, else None."""
    if not obj:
        return None
    stalled = condition(obj, "Stalled")
    if stalled.get("status") == "True":
        return "Stalled", f"{stalled.get('reason')}: {stalled.get('message')}"
    status = obj.get("status") or {}
    if status.get("state") in ("Down", "Unavailable"):
        failure = status.get("lastFailure") or (status.get("probe") or {}).get("lastFailure") or {}
        ready = condition(obj, "Ready")
        return status[
            "state"
        ], f"{failure.get('reason') or ''} {ready.get('reason', '')}: {ready.get('message', '')}"
    return None


# ------------------------------------------------------------------ refused at admission


@pytest.mark.parametrize("case_id, manifest, words", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_by_the_api_server_with_a_readable_message(world, case_id, manifest, words):
    proc = world.hostile.cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        world.hostile.namespace,
        "-f",
        "-",
        input=json.dumps(manifest),
        check=False,
    )
    assert proc.returncode != 0, f"{case_id} was admitted"
    assert words in proc.stderr, proc.stderr


# ------------------------------------------------------------------ judged by the operator


@pytest.mark.parametrize("case_id", [c[0] for c in verdict_cases(Addresses())])
def test_stalled_or_down_with_a_reason(world, case_id):
    kind, name, words = world.cases[case_id]
    try:
        found = eventually(lambda: verdict(world.hostile.get(KINDS[kind], name)), timeout=VERDICT_TIMEOUT)
    except AssertionError:
        pytest.fail(
            f"{kind} {name} is neither Stalled nor Down: {json.dumps(world.hostile.get(KINDS[kind], name))}"
        )
    state, why = found
    assert why.strip(" :"), f"{kind} {name} is {state} without a reason"
    assert words.lower() in why.lower(), f"{kind} {name}: {state} {why!r} does not mention {words!r}"


# ------------------------------------------------------------------ receivers and notices


def _deliveries(w: World) -> list[dict]:
    obj = w.hostile.get("alertrule", "alert-canary") or {}
    return [d for a in (obj.get("status") or {}).get("alerts") or [] for d in a.get("deliveries") or []]


def test_receivers_at_denied_addresses_fail_once_with_a_reason(world):
    deliveries = eventually(
        lambda: (lambda d: d if {x["receiver"] for x in d} >= {"canary", "metadata", "leaky"} else None)(
            _deliveries(world)
        ),
        timeout=VERDICT_TIMEOUT,
        message="deliveries to every receiver recorded",
    )
    for d in deliveries:
        assert not d["ok"] and d.get("error"), d
    for name in ("canary", "metadata"):
        [first, *_] = [d for d in deliveries if d["receiver"] == name]
        assert "denied" in first["error"].lower(), first


def test_a_receiver_error_body_is_not_copied_into_status(world):
    eventually(lambda: any(d["receiver"] == "leaky" for d in _deliveries(world)), timeout=VERDICT_TIMEOUT)
    text = json.dumps(world.hostile.get("alertrule", "alert-canary"))
    assert "AKIAFAKEHOSTILE0001" not in text and "fake-hostile-secret-key" not in text


def test_a_display_name_with_crlf_is_mailed_once_as_one_subject_line(world):
    def notices():
        obj = world.hostile.get("maintenancewindow", "crlf-notice") or {}
        return [n for n in (obj.get("status") or {}).get("notices") or [] if n.get("kind") == "advance"]

    eventually(
        lambda: notices() and world.smtp,
        timeout=VERDICT_TIMEOUT,
        message=f"the advance notice: {json.dumps(world.hostile.get('maintenancewindow', 'crlf-notice'))}",
    )
    time.sleep(10)  # a reconcile retried in a loop sent it 7 times in 45 s
    assert len(notices()) == 1
    mails = [m for m in world.smtp if "ops@acme.example" in (m["X-RcptTo"] or m["To"] or "")]
    assert len(mails) == 1, [m["Subject"] for m in world.smtp]
    subject = re.sub(r"\r?\n[ \t]", " ", mails[0]["Subject"])  # unfold a long header line
    assert "\n" not in subject and "\r" not in subject
    assert "Payments Bcc: victim@example.com" in subject  # the CR/LF became a space, not a header
    assert mails[0]["Bcc"] is None and mails[0]["X-RcptTo"] == "ops@acme.example"


# ------------------------------------------------------------------ what the other teams see


def test_nothing_reached_the_denied_canary(world):
    assert world.canary.requests == []


def test_no_secret_shown_anywhere(world):
    eventually(lambda: verdict(world.hostile.get("probe", "newline-secret")), timeout=VERDICT_TIMEOUT)
    dump = world.hostile(
        "get", "probes,backends,alertrules,maintenancewindows,apiproducts,events", "-o", "json"
    ).stdout
    text = dump + world.operator.log()
    value = SECRET
    forms = {
        value,
        urllib.parse.quote(value),
        urllib.parse.quote(value + "\n"),
        base64.b64encode(value.encode()).decode(),
        base64.b64encode((value + "\n").encode()).decode(),
        json.dumps(value + "\n")[1:-1],
        repr(value + "\n")[1:-1],
    }
    for form in forms:
        assert form not in text, f"secret shown as {form!r}"


def test_other_teams_cost_nothing(world):
    """Last: the healthy probe kept its schedule and the event loop never lagged 250 ms (100 ms
    at most once)."""
    # the hostile objects have had their verdicts (the tests above waited for them)
    ended = time.monotonic()
    runs = [t for t in world.target.times("/healthy") if t >= world.started]
    elapsed = ended - world.started
    assert len(runs) >= int(elapsed / HEALTHY_INTERVAL) - 1, (len(runs), elapsed)
    gaps = [b - a for a, b in zip([world.started, *runs], [*runs, ended], strict=True)]
    assert max(gaps) < 2 * HEALTHY_INTERVAL, f"a run of the healthy probe was missed: gap {max(gaps):.1f}s"
    steady = world.healthy.get("probe", "steady")
    assert steady["status"]["state"] == "Up"

    # The event loop never spent 100 ms or more in Pitwall's own code (a callback, a regex, a
    # decompression, a collection). Wall-clock lag on top of that is the machine's: this suite
    # runs on 2 shared cores at a load of 8 to 13, where any process waits for a CPU.
    after = lag_buckets(world.operator)
    busy = lags_over(world.lag_before, after, "pitwall_event_loop_busy_lag_seconds")
    wall = lags_over(world.lag_before, after, "pitwall_event_loop_lag_seconds")
    long = lags_over(world.lag_before, after, "pitwall_event_loop_busy_lag_seconds", le="0.25")
    print(f"event loop: {busy:.0f} samples >= 100 ms in Pitwall code, {wall:.0f} >= 100 ms wall clock")
    # One sample of 100-250 ms was seen in one run of three on 2026-11-29 (a busy machine; cause
    # not found yet: a full collection of the hostile objects' heap is the suspect); a repeated or
    # a longer block is what starves the other teams' probes, and fails here.
    assert long == 0, f"the event loop ran Pitwall code for 250 ms or more {long:.0f} times"
    assert busy <= 1, f"the event loop ran Pitwall code for 100 ms or more {busy:.0f} times"

    # no memory blow-up: the process's peak stayed under the Deployment's 512Mi limit
    with open(f"/proc/{world.operator.proc.pid}/status") as status:
        peak = int(re.search(r"^VmHWM:\s+(\d+) kB", status.read(), re.M)[1]) * 1024
    print(f"operator peak RSS {peak / 2**20:.0f} MiB")
    assert peak < 512 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"

    metrics = world.operator.metrics()
    assert not re.search(r'^pitwall_task_crashes_total\{task="[^"]+"\} [1-9]', metrics, re.M), (
        "a supervised task crashed"
    )
    with urllib.request.urlopen(
        f"http://127.0.0.1:{world.operator.metrics_port}/healthz", timeout=5
    ) as health:
        healthz = json.loads(health.read())
    # healthy, no supervised task lost; the probe engine's details ride along (overload is reported
    # there and as an Event, and never makes /healthz fail: a restart would only fall further behind)
    assert healthz["status"] == "ok", healthz
    assert set(healthz) <= {"status", "probeEngine"}, healthz

"""Consumer notices through the outbox against the real control plane (issue 19): incident and
sunset notices are recorded before they are sent, a SIGKILL between the record and the send is
followed by the send after the restart, and a receiver that fails is tried again; the receiver
(a real HTTP server on 127.0.0.1, whose own log is the evidence) accepts each notice once, and
every copy it was offered carries the same dedup key (the webhook body's ``id``)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import Operator, eventually
from tests.integration.test_backends import backend, backend_state
from tests.integration.test_products import product, ready

ENV = {"PITWALL_INCIDENT_TICK": "1", "PITWALL_NOTICE_RETRY_BASE": "1"}


class Gate:
    """A consumer's webhook. ``plan[event]`` lists what to do with that event's next requests:
    ``"hold"`` (keep the request open until :meth:`release`, then answer 503) or a status code;
    then 200. Every request is logged with the answer it got (None: held)."""

    def __init__(self):
        self.plan: dict[str, list] = {}
        self.log: list[dict] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.holding = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                event = (body or {}).get("event") or (body or {}).get("kind")
                with gate.lock:
                    steps = gate.plan.get(event) or []
                    step = steps.pop(0) if steps else 200
                    entry = {"event": event, "id": (body or {}).get("id"), "status": step, "body": body}
                    gate.log.append(entry)
                if step == "hold":
                    gate.holding.set()
                    gate.released.wait(120)
                    step = 503
                try:
                    self.send_response(step)
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (SIGKILLed meanwhile)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def release(self) -> None:
        self.released.set()

    def of(self, event: str) -> list[dict]:
        with self.lock:
            return [e for e in self.log if e["event"] == event]

    def accepted(self, event: str) -> list[dict]:
        return [e for e in self.of(event) if e["status"] == 200]

    def __enter__(self) -> Gate:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


class Health:
    """A backend's health endpoint: 200 while ``up``, else 503."""

    def __init__(self):
        self.up = True
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200 if health.up else 503)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def __enter__(self) -> Health:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def notice(kubectl, kind: str, name: str, field: str, match) -> dict | None:
    obj = kubectl.get(kind, name) or {}
    return next((n for n in (obj.get("status") or {}).get(field) or [] if match(n)), None)


def test_an_incident_notice_killed_between_record_and_send_arrives_once_and_a_failed_one_is_retried(
    cluster, namespace, kubectl, tmp_path
):
    op = Operator(cluster, tmp_path, namespace, ENV).start()
    try:
        with Gate() as gate, Health() as health:
            kubectl.apply(backend("core", health.url))
            kubectl.apply(
                product(
                    "payments",
                    [{"name": "v1", "image": "registry.example.com/payments:1"}],
                    public=True,
                    incidents={"mergeWindow": "2s", "minSpacing": "1s"},
                    backends=[{"name": "core", "criticality": "critical"}],
                    consumers=[{"name": "acme", "contact": {"webhook": gate.url + "/acme"}}],
                )
            )
            eventually(
                lambda: backend_state(kubectl, "core") == "Available", timeout=60, message="backend up"
            )
            eventually(lambda: ready(kubectl, "payments"), timeout=90, message="product ready")
            gate.plan = {"start": ["hold"], "resolved": [503, 503, 503]}

            # The start notice is recorded (Sending), then its delivery hangs: SIGKILL now.
            health.up = False
            assert gate.holding.wait(90), "the start notice never reached the receiver"
            [incident] = kubectl.list("incidents", "pitwall.dev/product=payments")
            name = incident["metadata"]["name"]
            held = notice(kubectl, "incident", name, "notices", lambda n: n.get("event") == "start")
            assert held is not None and held["state"] == "Sending"
            op.stop(kill=True)
            gate.release()

            # The next operator sends it again: one accepted, every copy with the same key.
            op = Operator(cluster, tmp_path, namespace, ENV).start()
            eventually(lambda: gate.accepted("start"), timeout=60, message="start notice after the restart")
            sent = eventually(
                lambda: (lambda n: n if n and n["state"] == "Sent" else None)(
                    notice(kubectl, "incident", name, "notices", lambda n: n.get("event") == "start")
                ),
                message="start notice recorded",
            )
            assert sent["recipients"] == ["acme"]
            assert len(gate.of("start")) == 2  # the held copy and the one accepted
            assert len({e["id"] for e in gate.of("start")}) == 1 and gate.of("start")[0]["id"]

            # The resolve: the receiver fails (503) for a whole try, the outbox tries again later.
            health.up = True
            eventually(lambda: gate.accepted("resolved"), timeout=90, message="resolved notice, retried")
            done = eventually(
                lambda: (lambda n: n if n and n["state"] == "Sent" else None)(
                    notice(kubectl, "incident", name, "notices", lambda n: n.get("event") == "resolved")
                ),
                message="resolved notice recorded",
            )
            assert done["recipients"] == ["acme"] and done["failed"] == [] and done["tries"] >= 1
            time.sleep(3)  # nothing more arrives
            assert len(gate.accepted("start")) == 1 and len(gate.accepted("resolved")) == 1
            assert len({e["id"] for e in gate.of("resolved")}) == 1
            assert gate.of("resolved")[0]["id"] != gate.of("start")[0]["id"]
    finally:
        op.stop()


def test_a_sunset_notice_killed_between_record_and_send_is_sent_after_the_restart_once(
    cluster, namespace, kubectl, tmp_path
):
    sunset_at = (datetime.now(UTC) + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    op = Operator(cluster, tmp_path, namespace, ENV).start()
    try:
        with Gate() as gate:
            gate.plan = {"sunset-deprecated": ["hold"], "sunset-reminder": [503, 503, 503]}
            consumers = [
                {"name": "globex", "versions": ["v1"], "contact": {"webhook": gate.url + "/globex"}},
                {"name": "acme", "versions": ["v2"], "contact": {"webhook": gate.url + "/acme"}},
            ]
            versions = [
                {"name": "v1", "image": "registry.example.com/payments:1"},
                {"name": "v2", "image": "registry.example.com/payments:2"},
            ]
            kubectl.apply(
                product("payments", versions, consumers=consumers, sunsetNotice={"leadTimes": ["7d"]})
            )
            eventually(lambda: ready(kubectl, "payments"), timeout=90, message="product ready")

            # Deprecated 20 days before its sunset: recorded owed, then the delivery hangs: SIGKILL.
            versions[0] = {**versions[0], "lifecycle": "deprecated", "sunsetAt": sunset_at}
            kubectl.apply(
                product("payments", versions, consumers=consumers, sunsetNotice={"leadTimes": ["7d"]})
            )
            assert gate.holding.wait(90), "the deprecation notice never reached the receiver"
            owed = notice(
                kubectl, "apiproduct", "payments", "sunsetNotices", lambda n: n["kind"] == "deprecated"
            )
            assert owed is not None and owed["pending"] == ["globex"] and owed["delivered"] is False
            op.stop(kill=True)
            gate.release()

            op = Operator(cluster, tmp_path, namespace, ENV).start()
            eventually(
                lambda: gate.accepted("sunset-deprecated"), timeout=60, message="notice after the restart"
            )
            sent = eventually(
                lambda: notice(
                    kubectl,
                    "apiproduct",
                    "payments",
                    "sunsetNotices",
                    lambda n: n["kind"] == "deprecated" and n["delivered"],
                ),
                message="deprecation notice recorded",
            )
            assert sent["recipients"] == ["globex"] and "pending" not in sent
            copies = gate.of("sunset-deprecated")
            assert len(copies) == 2 and len({c["id"] for c in copies}) == 1 and copies[0]["id"]

            # The sunset moves within 7 days: the reminder, refused (503) for a whole try, comes later.
            soon = (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
            versions[0] = {**versions[0], "sunsetAt": soon}
            kubectl.apply(
                product("payments", versions, consumers=consumers, sunsetNotice={"leadTimes": ["7d"]})
            )
            eventually(lambda: gate.accepted("sunset-reminder"), timeout=90, message="the reminder, retried")
            reminded = eventually(
                lambda: notice(
                    kubectl,
                    "apiproduct",
                    "payments",
                    "sunsetNotices",
                    lambda n: n["kind"] == "reminder" and n["delivered"],
                ),
                message="reminder recorded",
            )
            assert reminded["tries"] >= 1 and reminded["recipients"] == ["globex"]
            time.sleep(3)  # nothing more arrives
            assert len(gate.accepted("sunset-deprecated")) == 1 and len(gate.accepted("sunset-reminder")) == 1
            assert [e["body"]["consumer"] for e in gate.log] == ["globex"] * len(gate.log)  # acme uses v2
            assert any(e["reason"] == "SunsetNoticeSent" for e in kubectl.events("payments"))
    finally:
        op.stop()

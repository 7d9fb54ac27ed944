"""Receivers obey the egress policy (every type, before any dial), their answers never reach a
result, and their secrets are masked in every encoding. Real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from tests.unit.alerts.test_alert_delivery import T0

from pitwall import egress
from pitwall.alerts.delivery import RetryPolicy, deliver, deliver_message
from pitwall.alerts.rules import parse_receiver, parse_rule
from pitwall.alerts.state import Observation, evaluate
from pitwall.egress import Policy

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total=5, timeout=2)
DENY_LOOPBACK = Policy.from_lists(deny=["127.0.0.0/8", "::1"])


def notification(receiver: dict):
    rule = parse_rule(
        "shop", "probes-down", {"severity": "critical", "selector": {}, "receivers": [receiver]}
    )
    ev = evaluate(rule, [], [Observation("Probe", "checkout", "False", T0, "ProbeFailing", "got 503")], T0)
    return ev.notifications[0]


class Counting:
    """A TCP listener that counts connections (and answers nothing useful)."""

    def __init__(self):
        self.accepted = 0

    async def __aenter__(self):
        async def handle(reader, writer):
            self.accepted += 1
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


def receivers(port: int) -> list[tuple[dict, str | None]]:
    """Every receiver type pointed at 127.0.0.1:port, with the Secret value it would read."""
    base = f"http://127.0.0.1:{port}"
    ref = {"secretRef": {"name": "s", "key": "k"}}
    return [
        ({"name": "hook", "type": "webhook", "url": f"{base}/hook"}, None),
        ({"name": "hook2", "type": "webhook", **ref}, f"http://0:{port}/hook"),
        ({"name": "teams", "type": "msteams", **ref}, f"{base}/teams"),
        ({"name": "slack", "type": "slack", **ref}, f"http://[::ffff:127.0.0.1]:{port}/slack"),
        ({"name": "genie", "type": "opsgenie", "url": base, **ref}, "genie-key"),
        ({"name": "pd", "type": "pagerduty", "url": f"http://2130706433:{port}", **ref}, "routing-key"),
        (
            {"name": "mail", "type": "email", **ref, "email": {"to": ["a@example.com"]}},
            f"smtp://user:pw@localhost:{port}",
        ),
    ]


@pytest.mark.parametrize("index", range(7), ids=[r[0]["type"] + "-" + r[0]["name"] for r in receivers(1)])
async def test_every_receiver_type_is_refused_before_a_dial(index):
    async with Counting() as target:
        receiver, secret = receivers(target.port)[index]
        async with egress.client(DENY_LOOPBACK) as http:
            [result] = await deliver(
                notification(receiver), secret, http, policy=FAST, addresses=DENY_LOOPBACK
            )
            message = await deliver_message(
                parse_receiver(receiver), Message(), secret, http, policy=FAST, addresses=DENY_LOOPBACK
            )
        assert target.accepted == 0
    assert (result.ok, result.attempts) == (False, 1)  # refused once, not retried
    assert "refused" in result.error and "denied by the operator's address policy" in result.error
    if receiver["type"] in ("opsgenie", "pagerduty"):
        assert "take alerts, not messages" in message.error
    else:
        assert (message.ok, message.attempts) == (False, 1) and "refused" in message.error


class Message:
    subject = "Planned maintenance"
    text = "checkout is down for maintenance"
    html = "<p>checkout</p>"
    data = {"event": "notice"}


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://0xa9fea9fe/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
    ],
)
async def test_metadata_receivers_are_refused_under_the_default_policy(url):
    async with egress.client(Policy()) as http:
        [result] = await deliver(
            notification({"name": "hook", "type": "webhook", "url": url}), None, http, policy=FAST
        )
    assert not result.ok and result.attempts == 1
    assert "metadata" in result.error


@pytest.fixture
async def answering():
    """An HTTP receiver whose answer the test scripts: (status, body bytes or an endless stream)."""
    state = {"status": 403, "body": b""}

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        if state["body"] == "endless":
            response = web.StreamResponse(status=state["status"])
            await response.prepare(request)
            for _ in range(100_000):
                await response.write(b"x" * 65536)
            return response
        return web.Response(status=state["status"], body=state["body"], content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state["base"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


async def test_an_error_body_is_never_copied_into_the_result(answering):
    credential = {
        "AccessKeyId": "ASIAFAKEFAKEFAKE",
        "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKE",
        "Token": "IQoJb3JpZ2luX2VjEFAKE",
    }
    answering.update(status=403, body=json.dumps(credential).encode())
    async with egress.client(Policy()) as http:
        [result] = await deliver(
            notification({"name": "hook", "type": "webhook", "url": answering["base"] + "/hook"}),
            None,
            http,
            policy=FAST,
        )
    assert result.error == f"HTTP 403 Forbidden from {answering['base']}/***"


async def test_an_endless_error_body_is_cut(answering):
    answering.update(status=500, body="endless")
    async with egress.client(Policy()) as http:
        [result] = await deliver(
            notification({"name": "hook", "type": "webhook", "url": answering["base"]}),
            None,
            http,
            policy=RetryPolicy(max_attempts=2, base_delay=0.001, timeout=5),
        )
    assert (result.ok, result.attempts) == (False, 2)
    assert result.error == f"HTTP 500 Internal Server Error from {answering['base']}"


async def test_a_key_with_a_trailing_newline_is_masked_in_the_librarys_error(answering):
    """h11 refuses the header and quotes it (``Illegal header value b'GenieKey ...\\n'``)."""
    key = "0f9a8b7c-6d5e-4f3a-2b1c-0d9e8f7a6b5c\n"  # kubectl create secret --from-file
    async with egress.client(Policy()) as http:
        [result] = await deliver(
            notification(
                {
                    "name": "genie",
                    "type": "opsgenie",
                    "url": answering["base"],
                    "secretRef": {"name": "s", "key": "k"},
                }
            ),
            key,
            http,
            policy=FAST,
        )
    assert not result.ok
    assert "Illegal header value" in result.error
    assert "0f9a8b7c" not in result.error and "6b5c" not in result.error


async def test_smtp_password_is_masked_in_every_encoding():
    secret = "smtp://pitwall:p%40ss%3Aw0rd-l0ng@127.0.0.1:1/"  # nothing listens on port 1
    async with egress.client(Policy()) as http:
        [result] = await deliver(
            notification(
                {
                    "name": "mail",
                    "type": "email",
                    "secretRef": {"name": "s", "key": "k"},
                    "email": {"to": ["a@example.com"]},
                }
            ),
            secret,
            http,
            policy=RetryPolicy(max_attempts=1, timeout=2),
        )
    assert not result.ok and "SMTP 127.0.0.1:1" in result.error
    for form in ("p@ss:w0rd-l0ng", "p%40ss%3Aw0rd-l0ng", "w0rd"):
        assert form not in result.error


async def test_maintenance_receivers_and_consumer_webhooks_obey_the_policy(monkeypatch):
    """A window's notice receivers and a consumer's ``contact.webhook`` go through the operator's
    egress client: metadata spellings are refused and recorded as the notice's error."""
    from datetime import timedelta

    from tests.unit.kubeapi import Clock, KubeAPI, runtime
    from tests.unit.test_reconcile_products import product

    from pitwall import durations
    from pitwall.maintenance import reconcile as maintenance

    clock = Clock()
    monkeypatch.setattr(durations, "now", clock)
    api = KubeAPI()
    api.put(
        product(
            "registry.example.com/orders:1.0",
            consumers=[
                {
                    "name": "acme",
                    "versions": ["v1"],
                    "contact": {"webhook": "http://[::ffff:a9fe:a9fe]/latest/meta-data/"},
                }
            ],
        )
    )
    start = clock.moment + timedelta(minutes=4)
    api.put(
        {
            "apiVersion": "pitwall.dev/v1alpha1",
            "kind": "MaintenanceWindow",
            "metadata": {"name": "upgrade", "namespace": "shop"},
            "spec": {
                "reason": "upgrade",
                "maintenancePage": False,
                "schedule": {"start": durations.rfc3339(start), "duration": "30m"},
                "targets": {"apiProducts": {"names": ["orders"]}},
                "notice": {
                    "leadTime": "5m",
                    "receivers": [{"name": "ops", "type": "webhook", "url": "http://0xa9fea9fe/hook"}],
                },
            },
        }
    )
    rt = runtime(api)
    rt.maintenance.http = egress.client(rt.egress)
    try:
        await maintenance.reconcile(rt, "shop", "upgrade")  # the notice recorded as owed ...
        await rt.maintenance.sender.run_once("shop", "upgrade")  # ... the outbox's send round ...
        await maintenance.reconcile(rt, "shop", "upgrade")  # ... and its result recorded
    finally:
        await rt.maintenance.http.aclose()
    [notice] = api.get("MaintenanceWindow", "shop", "upgrade")["status"]["notices"]
    assert notice["delivered"] is False and sorted(notice["failed"]) == [
        "acme",
        "ops",
    ]  # refused: not retried
    assert notice["error"].count("refused") == 2 and "metadata" in notice["error"]

"""A newcomer's first hour, the pure parts: what the demo's receiver prints, the examples
pointed at free ports, commands in alert cards that work as pasted, kubectl's namespace rules."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml
from tests.unit.alerts.test_alert_payloads import firing, resolved

from pitwall import cli, views
from pitwall.alerts import payloads
from pitwall.demo import EXAMPLE_ADDRESSES, describe_notification, example_manifests

ROOT = Path(__file__).resolve().parents[2]


def test_teams_card_is_printed_as_its_title_and_facts_not_a_blank_line():
    n = firing()
    lines = describe_notification(payloads.teams(n))
    assert lines[0] == "FIRING [critical] Probe checkout: Ready is False (ProbeFailing)"
    assert any(line.strip().startswith("Object: Probe shop/checkout") for line in lines)
    assert any("Alert key:" in line for line in lines)
    assert all(line.strip() for line in lines)


def test_slack_pagerduty_and_webhook_payloads_are_printed_as_text():
    n = firing()
    slack = describe_notification(payloads.slack(n))
    assert slack[0].startswith("FIRING [critical]") and any("Object: Probe shop/checkout" in x for x in slack)
    pd = describe_notification(payloads.pagerduty(n, n.alerts[0], "R0UT1NG"))
    assert pd[0].startswith("PagerDuty trigger") and "Ready is False" in pd[0]
    am = describe_notification(payloads.alertmanager(resolved()))
    assert am[0].startswith("RESOLVED 1 alert(s) of probes-down")
    notice = describe_notification(
        {"subject": "Maintenance of Payments API v2", "text": "Reason: patching\n"}
    )
    assert notice == ["Maintenance of Payments API v2", "  Reason: patching"]
    assert describe_notification({}) == ["{}"]
    long = describe_notification({"subject": "s", "text": "\n".join(f"line {i}" for i in range(40))}, limit=5)
    assert len(long) == 6 and long[-1] == "  ... 36 more lines"


def test_ack_command_in_a_card_parses_as_pasted_with_its_namespace():
    n = firing()
    command = payloads.ack_commands(n, n.alerts[0].key)
    kubectl, _, rest = command.partition("  (or: ")
    assert kubectl.startswith("kubectl -n shop annotate alertrule probes-down ")
    argv = shlex.split(rest.rstrip(")"))
    assert argv[0] == "pitwall"
    args = cli.build_parser().parse_args(argv[1:])
    assert (args.command, args.namespace, args.rule, args.key) == (
        "ack",
        "shop",
        "probes-down",
        n.alerts[0].key,
    )


def test_listings_take_all_namespaces_and_ack_needs_one():
    parser = cli.build_parser()
    for command in (["status"], ["windows"], ["graph"], ["impact", "core-banking"]):
        args = parser.parse_args([*command, "-A"])
        assert views._namespace(args) is None
        assert views._namespace(parser.parse_args([*command, "-n", "team-a"])) == "team-a"
    for command in (["ack", "rule", "key"], ["probe", "run", "p"]):
        try:
            parser.parse_args([*command, "-A"])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"{command} accepted -A")


def test_the_namespace_comes_from_the_kubeconfig_context(tmp_path, monkeypatch):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "marketplace"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert views._namespace(cli.build_parser().parse_args(["status"])) == "marketplace"
    args = cli.build_parser().parse_args(["status", "--kubeconfig", str(path)])
    monkeypatch.delenv("KUBECONFIG")
    assert views._namespace(args) == "marketplace"


def test_examples_are_pointed_at_the_addresses_in_use():
    text = example_manifests(
        ROOT / "examples", demo="127.0.0.1:41000", receiver="127.0.0.1:41001", smtp="127.0.0.1:41002"
    )
    for address in EXAMPLE_ADDRESSES.values():
        assert address not in text
    docs = [d for d in yaml.safe_load_all(text) if d]
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    assert secrets["smtp-relay"]["url"] == "smtp://pitwall:relay-password@127.0.0.1:41002"
    assert secrets["teams-payments-ops"]["url"].startswith("http://127.0.0.1:41001/")
    probe = next(d for d in docs if d["kind"] == "Probe" and d["metadata"]["name"] == "demo-api-isup")
    assert probe["spec"]["target"]["url"] == "http://127.0.0.1:41000/isUp"
    # every example file is there, untouched otherwise
    assert len([d for d in docs if d["kind"] != "Secret"]) == len(
        [
            d
            for p in (ROOT / "examples").glob("*.yaml")
            for d in yaml.safe_load_all(p.read_text())
            if d and d["kind"] != "Secret"
        ]
    )


def test_text_log_lines_name_their_object():
    from pitwall.logs import with_object

    assert with_object("probe is Up", "Probe", "team-a/payments-isup") == "probe team-a/payments-isup is Up"
    assert (
        with_object("backend Unknown -> Available", "Backend", "m/core-banking")
        == "backend m/core-banking Unknown -> Available"
    )
    assert (
        with_object("maintenance window is Active", "MaintenanceWindow", "m/w")
        == "maintenance window m/w is Active"
    )
    assert (
        with_object("alert k: pending -> firing", "AlertRule", "m/r")
        == "alert k: pending -> firing [AlertRule m/r]"
    )
    assert with_object("probe m/p is Up", "Probe", "m/p") == "probe m/p is Up"
    assert with_object("started", None, None) == "started"


def test_first_digest_comes_one_interval_after_the_rule_was_created():
    from datetime import UTC, datetime

    from pitwall.alerts.digest import due, last_sent

    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    fresh = {"creationTimestamp": "2026-11-29T11:59:00Z"}
    assert not due(7200, last_sent({}, fresh), now)  # a fresh start sends nothing
    assert due(7200, last_sent({}, {"creationTimestamp": "2026-11-29T09:00:00Z"}), now)
    assert not due(7200, last_sent({"lastDigestAt": "2026-11-29T11:00:00Z"}, fresh), now)


def test_a_backend_declared_down_carries_reason_who_and_when():
    from pitwall.backends.declared import declared_down, down_patch, up_patch

    backend = {
        "metadata": {
            "name": "core-banking",
            "annotations": down_patch("  mainframe\npatching  ", "marge", "2026-11-29T14:00:00Z")["metadata"][
                "annotations"
            ],
        }
    }
    declaration = declared_down(backend)
    assert declaration.describe() == "declared down by marge at 2026-11-29T14:00:00Z: mainframe patching"
    assert (
        declared_down({"metadata": {"annotations": {"pitwall.dev/declared-down": ""}}}).reason
        == "no reason given"
    )
    assert declared_down({"metadata": {}}) is None
    assert set(up_patch()["metadata"]["annotations"].values()) == {None}
    try:
        down_patch(" ", "marge", "now")
    except ValueError as exc:
        assert "reason is required" in str(exc)
    else:
        raise AssertionError("an empty reason was accepted")


def test_scale_and_set_env_patch_one_version_by_name():
    from pitwall.edits import env_with, version_patch

    product = {"metadata": {"name": "payments"}, "spec": {"versions": [{"name": "v1"}, {"name": "v2"}]}}
    assert version_patch(product, "v2", "replicas", 5) == [
        {"op": "test", "path": "/spec/versions/1/name", "value": "v2"},
        {"op": "add", "path": "/spec/versions/1/replicas", "value": 5},
    ]
    try:
        version_patch(product, "v3", "replicas", 5)
    except ValueError as exc:
        assert "no version 'v3' (versions: v1, v2)" in str(exc)
    current = [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "x"}}},
    ]
    assert env_with(current, ["LOG_LEVEL=debug", "NEW=1", "DB-"]) == [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "NEW", "value": "1"},
    ]
    try:
        env_with([], ["oops"])
    except ValueError as exc:
        assert "NAME=VALUE" in str(exc)


def test_status_row_of_a_backend_says_why_it_is_unavailable():
    backend = {
        "metadata": {"name": "core-banking", "namespace": "m"},
        "status": {
            "state": "Unavailable",
            "impact": {"apiProducts": [{"name": "payments", "effect": "Unavailable"}]},
            "conditions": [
                {
                    "type": "Available",
                    "status": "False",
                    "reason": "DeclaredDown",
                    "message": "declared down by marge at 2026-11-29T14:00:00Z: mainframe patching; "
                    "affects: payments",
                }
            ],
        },
    }
    [row] = views.status_rows({"Backend": [backend]})
    assert row["detail"].startswith("declared down by marge") and row["namespace"] == "m"
    backend["status"]["state"] = "Available"
    assert views.status_rows({"Backend": [backend]})[0]["detail"] == "used by payments"


def test_a_status_write_budget_out_of_range_is_refused_before_start(capsys):
    from pitwall import cli

    assert cli.main(["run", "--status-writes-per-second", "0"]) == 2
    assert "--status-writes-per-second must be between 0.1 and 1000, got 0" in capsys.readouterr().err

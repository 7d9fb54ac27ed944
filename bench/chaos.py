"""Chaos run: nothing lost, nothing repeated, exactly one resolve per page (issue 19).

    python -m bench.chaos                    # >= 100 SIGKILLs, leader changes, API server and receivers down
    python -m bench.chaos --seed 42          # replay a run (the seed is printed first)
    python -m bench.chaos --quick            # the small version ``make test`` runs (tests/integration/test_chaos.py)

Against a real control plane and real receivers on 127.0.0.1 (an HTTP server taking an
Alertmanager webhook, PagerDuty Events v2 and maintenance notices, and an SMTP server), a seeded
scenario fires, repeats, escalates, acknowledges and resolves alerts, starts, ends and deletes
maintenance windows, deletes and re-creates probes and edits specs (a rule edit that stops
matching included) while the operator is killed with SIGKILL at random moments and restarted.
It runs as two replicas with leader election and probe shards: most kills take the leader, so
the standby takes over mid-flight (a leader change), the rest take the standby. Separately, the
API server is killed and started again 30 s later (same port, etcd and certificates), and every
HTTP receiver answers 503 for 10 minutes (the kills go on meanwhile). Then everything is brought back up, deleted, and the receivers' own logs are read:

- lost: an incident one receiver of the rule saw that another never heard of (neither its
  firing nor its resolve), a maintenance notice whose start went out without its end, or a
  product incident (the public product's critical backend goes down and up) whose start notice
  went out without its resolve, or that its receiver or its consumer never heard of;
- duplicates beyond dedup keys: two different keys for one event (two resolves of one incident
  with different ``endsAt``, two e-mails for one event with different Message-IDs);
- triggers without exactly one resolve: an incident (PagerDuty dedup_key, webhook fingerprint +
  startsAt) still open at the end, or resolved twice under different keys;
- maintenance pages left on: a Service still selecting the page, a page Deployment left;
- objects stuck terminating: Pitwall objects still there after the deletes and the grace.

Copies within a dedup key (a resend after a crash between sending and recording it) are counted
too, for information: receivers collapse them by design.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .common import RESULTS, ROOT, control_plane, machine, spawn_ready, stop_group

NAMESPACE = "chaos"
GROUP = "pitwall.dev/v1alpha1"
# Retry budgets that outlast the receiver outage (10 minutes in the full run): alerts 2 s doubling,
# 10 tries, given up only after 17 min; notices 10 s doubling (at most 10 min apart), 8 tries, given
# up after 20 min; a finalizer grace that outlasts both, so a loss counted at the end is a loss, not
# a budget the scenario chose to exhaust. The production defaults are longer still (alerts 30 s
# doubling: hours; notices 15 s doubling: 25 min). A short Lease: leader changes within seconds.
OPERATOR_ENV = {
    "PITWALL_DELIVERY_BASE_DELAY": "0.05",
    "PITWALL_OUTBOX_RETRY_BASE": "2",
    "PITWALL_NOTICE_RETRY_BASE": "10",
    "PITWALL_FINALIZER_GRACE": "1500",
    "PITWALL_RESYNC_SECONDS": "20",
    "PITWALL_LEASE_DURATION": "6",
}


# -- the receivers: their own logs are the evidence -----------------------------------------------------
class Receivers:
    """One HTTP server for every HTTP receiver, writing each request it accepts to a JSONL log;
    ``fail_until`` makes it answer 503 (recorded as refused) for a while."""

    def __init__(self, log: Path):
        self.log_path = log
        self.fail_until = 0.0
        self.lock = threading.Lock()
        self.accepted: list[dict] = []
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                refused = time.monotonic() < receivers.fail_until
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                # Accepted once read, as a real receiver would; the sender may die before the
                # answer reaches it (a SIGKILL mid-request) and send it again: a copy.
                entry = {"at": time.time(), "path": self.path.split("?")[0], "refused": refused, "body": body}
                with receivers.lock, open(receivers.log_path, "a") as out:
                    out.write(json.dumps(entry) + "\n")
                    if not refused:
                        receivers.accepted.append(entry)
                with contextlib.suppress(OSError):
                    self.send_response(503 if refused else 202)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"status":"success"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self, prefix: str) -> list[dict]:
        with self.lock:
            return [e for e in self.accepted if e["path"].startswith(prefix)]

    def __enter__(self) -> Receivers:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def smtp_server(log: Path):
    """A real SMTP server (aiosmtpd) logging every accepted mail's headers."""
    from aiosmtpd.controller import Controller

    from pitwall_testing.cluster import free_port

    mails: list[dict] = []

    class Keep:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
            message = message_from_bytes(envelope.content)
            entry = {
                "at": time.time(),
                "message_id": message["Message-ID"],
                "subject": message["Subject"],
                "keys": message["X-Pitwall-Alert-Keys"],
            }
            mails.append(entry)  # written to ``log`` at the end (no blocking file I/O in the loop)
            return "250 OK"

    port = free_port()
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mails
    finally:
        controller.stop()
        log.write_text("".join(json.dumps(m) + "\n" for m in mails))


class Targets:
    """What the probes check: ``/t/<name>`` answers 200 while ``name`` is up, else 503."""

    def __init__(self):
        self.down: set[str] = set()
        targets = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                name = self.path.rsplit("/", 1)[-1]
                self.send_response(503 if name in targets.down else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/t/{name}"

    def __enter__(self) -> Targets:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the operators, killed and restarted ------------------------------------------------------------------
class KillableOperator:
    """One ``pitwall run`` process (a replica when there are several)."""

    def __init__(self, cluster, workdir: Path, namespace: str, index: int = 0, args: tuple[str, ...] = ()):
        from pitwall_testing.cluster import POD_ADDRESS_REWRITE

        self.cluster, self.workdir, self.namespace, self.index = cluster, workdir, namespace, index
        self.env = {
            **cluster.env,
            "PITWALL_ENDPOINT_REWRITE": POD_ADDRESS_REWRITE,
            "POD_NAMESPACE": namespace,  # where the leader and shard Leases live
            **OPERATOR_ENV,
        }
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.metrics_port = 0

    def start(self) -> None:
        """Start it; again on fresh ports if it does not come up (on a busy machine a free port
        may be taken by another process before the operator binds it)."""
        for attempt in range(3):
            try:
                self._start()
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def _start(self) -> None:
        from pitwall_testing.cluster import free_port

        self.metrics_port = free_port()
        args = [
            sys.executable,
            "-m",
            "pitwall",
            "run",
            "--namespace",
            self.namespace,
            "--metrics-port",
            str(self.metrics_port),
            "--statuspage-port",
            str(free_port()),
            "--internal-port",
            str(free_port()),
            *self.args,
        ]
        self.proc = spawn_ready(
            args,
            log_path=self.workdir / f"operator-{self.index}.log",
            cwd=ROOT,
            env=self.env,
            url=f"http://127.0.0.1:{self.metrics_port}/readyz",
            timeout=60,
            what=f"operator replica {self.index}",
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def leading(self) -> bool:
        """From its own /metrics (``pitwall_leader 1``)."""
        if not self.alive:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=3) as r:
                text = r.read().decode()
        except OSError:
            return False
        return any(line.strip() == "pitwall_leader 1.0" for line in text.splitlines())

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_group(self.proc, grace=15)


class Replicas:
    """``count`` operator replicas; with two or more they elect a leader (``--leader-elect``) and
    split the probes (``--probe-shards``), as a Deployment with replicas: 2 does. A kill takes the
    leader most of the time (a leader change: the standby takes the Lease over) and the standby
    otherwise (its probe shard moves)."""

    def __init__(self, cluster, workdir: Path, namespace: str, count: int, rng: random.Random):
        args: tuple[str, ...] = ()
        if count > 1:
            args = ("--leader-elect", "--probe-shards", str(count))
        self.members = [KillableOperator(cluster, workdir, namespace, i, args) for i in range(count)]
        self.rng = rng
        self.kills = 0
        self.leader_kills = 0

    def start(self) -> None:
        for member in self.members:
            member.start()

    def leader(self) -> KillableOperator | None:
        return next((m for m in self.members if m.leading()), None)

    def kill(self) -> KillableOperator:
        victim = self.members[0]
        if len(self.members) > 1:
            leader = self.leader()
            if leader is not None and self.rng.random() < 0.75:
                victim = leader
                self.leader_kills += 1
            else:
                victim = self.rng.choice([m for m in self.members if m is not leader] or self.members)
        victim.kill()
        self.kills += 1
        return victim

    def revive(self) -> list[int]:
        """Start every replica that is not running (killed, or exited on its own: a leader that
        could not renew its Lease while the API server was away exits by design)."""
        revived = []
        for member in self.members:
            if not member.alive:
                if member.proc is not None and member.proc.returncode not in (None, -signal.SIGKILL):
                    revived.append(member.index)
                member.start()
        return revived

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def stop_apiserver(cluster, seconds: float, meanwhile) -> None:
    """Kill the API server (SIGKILL: it is gone, no graceful shutdown) and start it again after
    ``seconds``, on the same port with the same etcd and certificates (its own command line,
    read from /proc). ``meanwhile()`` runs every 2 s while it is away."""
    proc = cluster.processes["kube-apiserver"]
    argv = [a.decode() for a in Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0") if a]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            meanwhile()
            time.sleep(min(2.0, max(0.0, end - time.monotonic())))
    finally:
        # Cluster's own spawn and readiness wait (private: the control plane has no public restart).
        cluster._spawn("kube-apiserver", argv[1:])
        cluster._wait("kube-apiserver /readyz", lambda: cluster._get("/readyz")[0] == 200, 180)


# -- the scenario ---------------------------------------------------------------------------------------
def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Scenario:
    cluster: object
    namespace: str
    rng: random.Random
    targets: Targets
    receivers: Receivers
    smtp_port: int
    probes: int
    log: list[str] = field(default_factory=list)
    windows: int = 0
    deleted_probes: set = field(default_factory=set)

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return self.cluster.kubectl(*args, "-n", self.namespace, input=input, check=False, timeout=60)

    def apply(self, obj: dict) -> None:
        proc = self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(obj))
        if proc.returncode:  # a refused object would make a quiet, meaningless run
            raise RuntimeError(f"{obj['kind']} {obj['metadata']['name']} refused: {proc.stderr.strip()}")

    def note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")

    # objects --------------------------------------------------------------------------------------------
    def probe(self, index: int, interval: str = "1s") -> dict:
        name = f"p{index}"
        return {
            "apiVersion": GROUP,
            "kind": "Probe",
            "metadata": {"name": name, "labels": {"tier": "chaos", "pitwall.dev/product": "shop"}},
            "spec": {
                "target": {"url": self.targets.url(name)},
                "interval": interval,
                "timeout": "1s",
                "failureThreshold": 1,
            },
        }

    def rule(self, tier: str = "chaos", repeat: str = "60s") -> dict:
        url = self.receivers.url
        return {
            "apiVersion": GROUP,
            "kind": "AlertRule",
            "metadata": {"name": "pages"},
            "spec": {
                "severity": "critical",
                "selector": {"kinds": ["Probe"], "matchLabels": {"tier": tier}},
                "when": {"condition": "Ready", "status": "False", "for": "1s"},
                "repeatInterval": repeat,
                "receivers": [
                    {"name": "hook", "type": "webhook", "url": url + "/hook"},
                    {
                        "name": "pd",
                        "type": "pagerduty",
                        "url": url + "/pd",
                        "secretRef": {"name": "chaos-pd", "key": "key"},
                    },
                    {
                        "name": "mail",
                        "type": "email",
                        "secretRef": {"name": "chaos-smtp", "key": "url"},
                        "email": {"to": ["oncall@example.com"], "from": "pitwall@example.com"},
                    },
                    {"name": "lead", "type": "webhook", "url": url + "/lead", "escalationOnly": True},
                ],
                "escalation": [{"after": "6s", "receivers": ["lead"]}],
            },
        }

    def setup(self) -> None:
        for name, key, value in (
            ("chaos-pd", "key", "R0UT1NGKEY0000000000000000000000"),
            ("chaos-smtp", "url", f"smtp://127.0.0.1:{self.smtp_port}"),
        ):
            self.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name, "labels": {"pitwall.dev/use": "receivers"}},
                    "stringData": {key: value},
                }
            )
        # The product is public and depends critically on a backend the scenario takes down and
        # up: incidents open and resolve, and their notices go to a receiver and the consumer.
        self.apply(
            {
                "apiVersion": GROUP,
                "kind": "Backend",
                "metadata": {"name": "core"},
                "spec": {
                    "displayName": "core",
                    "owner": {"team": "providers", "contact": "core@example.com"},
                    "health": {"url": self.targets.url("core"), "interval": "1s", "timeout": "1s"},
                },
            }
        )
        self.apply(
            {
                "apiVersion": GROUP,
                "kind": "ApiProduct",
                "metadata": {"name": "shop"},
                "spec": {
                    "displayName": "Shop",
                    "owner": {"team": "shop"},
                    "public": True,
                    "backends": [{"name": "core", "criticality": "critical"}],
                    "incidents": {
                        "mergeWindow": "5s",
                        "minSpacing": "1s",
                        "receivers": [
                            {"name": "inc", "type": "webhook", "url": self.receivers.url + "/incidents"}
                        ],
                    },
                    "versions": [{"name": "v1", "image": "registry.example.com/shop:1", "replicas": 1}],
                    "consumers": [
                        {
                            "name": "acme",
                            "versions": ["v1"],
                            "contact": {"webhook": self.receivers.url + "/notices/acme"},
                        }
                    ],
                },
            }
        )
        for i in range(self.probes):
            self.apply(self.probe(i))
        self.apply(self.rule())

    # one random step --------------------------------------------------------------------------------------
    def step(self) -> None:
        rng = self.rng
        action = rng.choices(
            ["flip", "ack", "window", "unwindow", "edit-rule", "delete-probe", "interval", "backend"],
            weights=[8, 2, 1.5, 1, 1, 1, 1, 1.5],
        )[0]
        if action == "backend":  # an incident opens (or, after the merge window, resolves)
            (self.targets.down.discard if "core" in self.targets.down else self.targets.down.add)("core")
            self.note(f"backend core {'down' if 'core' in self.targets.down else 'up'}")
        elif action == "flip":
            name = f"p{rng.randrange(self.probes)}"
            (self.targets.down.discard if name in self.targets.down else self.targets.down.add)(name)
            self.note(f"{name} {'down' if name in self.targets.down else 'up'}")
        elif action == "ack":
            rule = self.kubectl("get", "alertrule", "pages", "-o", "json")
            if rule.returncode == 0:
                firing = [
                    a["key"]
                    for a in (json.loads(rule.stdout).get("status") or {}).get("alerts") or []
                    if a.get("state") == "firing" and not a.get("acknowledgedBy")
                ]
                if firing:
                    key = rng.choice(firing)
                    self.kubectl(
                        "annotate",
                        "--overwrite",
                        "alertrule",
                        "pages",
                        f"pitwall.dev/acknowledge={key}",
                        "pitwall.dev/acknowledged-by=chaos",
                    )
                    self.note(f"ack {key}")
        elif action == "window":
            self.windows += 1
            start = datetime.now(UTC) + timedelta(seconds=rng.uniform(4, 8))
            self.apply(
                {
                    "apiVersion": GROUP,
                    "kind": "MaintenanceWindow",
                    "metadata": {"name": f"w{self.windows}"},
                    "spec": {
                        "reason": "chaos",
                        "schedule": {"start": stamp(start), "duration": f"{rng.randint(6, 14)}s"},
                        "targets": {"apiProducts": {"names": ["shop"]}},
                        "notice": {"leadTime": "2s"},
                    },
                }
            )
            self.note(f"window w{self.windows}")
        elif action == "unwindow" and self.windows:
            name = f"w{rng.randint(1, self.windows)}"
            self.kubectl("delete", "maintenancewindow", name, "--wait=false", "--ignore-not-found")
            self.note(f"delete window {name}")
        elif action == "edit-rule":
            tier = rng.choice(["chaos", "chaos", "nothing"])  # "nothing": stops matching, resolves all
            self.apply(self.rule(tier=tier, repeat=rng.choice(["60s", "90s"])))  # 60 s: the admission floor
            self.note(f"rule selects tier={tier}")
        elif action == "delete-probe":
            index = rng.randrange(self.probes)
            if index in self.deleted_probes:
                self.apply(self.probe(index))
                self.deleted_probes.discard(index)
                self.note(f"recreate p{index}")
            else:
                self.kubectl("delete", "probe", f"p{index}", "--wait=false", "--ignore-not-found")
                self.deleted_probes.add(index)
                self.note(f"delete p{index}")
        elif action == "interval":
            index = rng.randrange(self.probes)
            if index not in self.deleted_probes:
                self.apply(self.probe(index, interval=rng.choice(["1s", "2s"])))
                self.note(f"p{index} interval")

    def calm(self) -> None:
        """Everything up, matching, no window: every alert must now resolve."""
        self.targets.down.clear()
        self.apply(self.rule())
        for index in sorted(self.deleted_probes):
            self.apply(self.probe(index))
        self.deleted_probes.clear()
        self.kubectl("delete", "maintenancewindows", "--all", "--wait=false")


# -- the verdict, from the receivers' logs --------------------------------------------------------------
@dataclass
class Verdict:
    lost: int = 0
    duplicates_beyond_keys: int = 0
    triggers_without_one_resolve: int = 0
    pages_left_on: int = 0
    stuck_terminating: int = 0
    copies_within_keys: int = 0
    incidents: int = 0
    notices: int = 0
    incident_notices: int = 0
    details: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicates_beyond_keys
            or self.triggers_without_one_resolve
            or self.pages_left_on
            or self.stuck_terminating
        )


def judge(receivers: Receivers, mails: list[dict]) -> Verdict:
    verdict = Verdict()
    # Alertmanager webhook: an incident is (fingerprint, startsAt); one resolve (one endsAt) each.
    hook: dict[tuple[str, str], dict] = defaultdict(lambda: {"firing": 0, "resolved": set(), "key": ""})
    seen: Counter = Counter()
    for entry in receivers.paths("/hook"):
        for alert in (entry["body"] or {}).get("alerts") or []:
            incident = hook[(alert["fingerprint"], alert["startsAt"])]
            incident["key"] = alert["labels"].get("alert_key", "")
            if alert["status"] == "firing":
                incident["firing"] += 1
            else:
                incident["resolved"].add(alert["endsAt"])
            seen[
                (
                    alert["fingerprint"],
                    alert["startsAt"],
                    alert["status"],
                    alert.get("endsAt"),
                    alert["annotations"].get("event"),
                )
            ] += 1
    verdict.copies_within_keys += sum(
        n - 1 for (*_, event), n in seen.items() if event != "reminder" and n > 1
    )
    for (_fingerprint, starts), incident in hook.items():
        verdict.incidents += 1
        if len(incident["resolved"]) != 1:
            verdict.triggers_without_one_resolve += 1
            verdict.details.append(
                f"webhook {incident['key']} since {starts}: {len(incident['resolved'])} resolves"
            )
    # PagerDuty: per dedup_key, trigger opens, resolve closes; anything open at the end is a page
    # nobody closed.
    open_: dict[str, bool] = {}
    pd_keys = set()
    for entry in receivers.paths("/pd"):
        body = entry["body"] or {}
        key, action = body.get("dedup_key"), body.get("event_action")
        pd_keys.add(key)
        if action == "trigger":
            open_[key] = True
        elif action == "resolve":
            if not open_.get(key, False):
                verdict.copies_within_keys += 1  # a resolve for a closed key: PagerDuty drops it
            open_[key] = False
    left_open = [k for k, v in open_.items() if v]
    verdict.triggers_without_one_resolve += len(left_open)
    verdict.details += [f"pagerduty {k} still triggered" for k in left_open]
    # E-mail: copies share a Message-ID; a second resolve of one incident would carry another.
    by_id = Counter(m["message_id"] for m in mails)
    verdict.copies_within_keys += sum(n - 1 for n in by_id.values() if n > 1)
    resolves_by_key: dict[str, set] = defaultdict(set)
    for mail in mails:
        if str(mail["subject"]).startswith("RESOLVED"):
            for key in str(mail["keys"] or "").split(","):
                resolves_by_key[key.strip()].add(mail["message_id"])
    incidents_by_key = Counter(i["key"] for i in hook.values())
    for key, ids in resolves_by_key.items():
        if len(ids) > incidents_by_key.get(key, 0):
            verdict.duplicates_beyond_keys += len(ids) - incidents_by_key.get(key, 0)
            verdict.details.append(
                f"e-mail: {len(ids)} resolves of {key} for {incidents_by_key.get(key, 0)} incidents"
            )
    # Lost: an incident the webhook saw that PagerDuty or the mailbox never heard of, and back.
    hook_keys = {i["key"] for i in hook.values()}
    mail_keys = {k.strip() for m in mails for k in str(m["keys"] or "").split(",") if k.strip()}
    for name, keys in (("pagerduty", pd_keys), ("e-mail", mail_keys)):
        for key in hook_keys - keys:
            verdict.lost += 1
            verdict.details.append(f"{name} never heard of {key}")
        for key in keys - hook_keys:
            verdict.lost += 1
            verdict.details.append(f"the webhook never heard of {key} ({name} did)")
    # Notices: every start that went out is followed by its end (or the window's deletion notice).
    notices: dict[tuple[str, str], set] = defaultdict(set)
    ids: Counter = Counter()
    for entry in receivers.paths("/notices/"):
        body = entry["body"] or {}
        if body.get("type") == "incident":
            continue  # judged below
        notices[(body.get("window"), body.get("occurrence"))].add(body.get("kind"))
        ids[body.get("id")] += 1
    verdict.notices = sum(ids.values())
    verdict.copies_within_keys += sum(n - 1 for n in ids.values() if n > 1)
    for (window, occurrence), kinds in notices.items():
        if "start" in kinds and "end" not in kinds:
            verdict.lost += 1
            verdict.details.append(f"window {window} {occurrence}: start notice without its end")
    judge_incidents(receivers, verdict)
    return verdict


def judge_incidents(receivers: Receivers, verdict: Verdict) -> None:
    """Incident notices (the product's receiver and its consumer): every incident one of them
    heard of the other heard of too; every start is followed by its resolve; one dedup key
    (the body's ``id``) per incident, event and recipient."""
    seen: dict[tuple[str, str], dict[str, set]] = defaultdict(lambda: defaultdict(set))
    copies: Counter = Counter()
    for entry in receivers.paths("/incidents") + receivers.paths("/notices/"):
        body = entry["body"] or {}
        if body.get("type") != "incident":
            continue
        recipient = entry["path"]
        name = (body.get("incident") or {}).get("id") or "?"
        seen[(recipient, name)][body.get("event") or "?"].add(body.get("id"))
        copies[(recipient, body.get("id"), body.get("event"))] += 1
    verdict.incident_notices = sum(copies.values())
    verdict.copies_within_keys += sum(n - 1 for n in copies.values() if n > 1)
    by_recipient: dict[str, set] = defaultdict(set)
    for (recipient, name), events in seen.items():
        by_recipient[recipient].add(name)
        if "start" in events and "resolved" not in events:
            verdict.lost += 1
            verdict.details.append(f"incident {name} to {recipient}: start notice without its resolve")
        for event, ids in events.items():
            if event != "update" and len(ids) > 1:
                verdict.duplicates_beyond_keys += len(ids) - 1
                verdict.details.append(
                    f"incident {name} to {recipient}: {len(ids)} keys for its {event} notice"
                )
    everyone = set().union(*by_recipient.values()) if by_recipient else set()
    for recipient, names in by_recipient.items():
        for name in sorted(everyone - names):
            verdict.lost += 1
            verdict.details.append(f"incident {name}: {recipient} never heard of it")


def final_checks(cluster, namespace: str, verdict: Verdict) -> None:
    def get(*args):
        proc = cluster.kubectl(*args, "-n", namespace, "-o", "json", check=False, timeout=60)
        return json.loads(proc.stdout)["items"] if proc.returncode == 0 else []

    for service in get("get", "services", "-l", "pitwall.dev/product"):
        if (service["spec"].get("selector") or {}).get("pitwall.dev/role") == "maintenance-page":
            verdict.pages_left_on += 1
            verdict.details.append(f"Service {service['metadata']['name']} still on the maintenance page")
    pages = get("get", "deployments", "-l", "pitwall.dev/role=maintenance-page")
    verdict.pages_left_on += len(pages)
    verdict.details += [f"page Deployment {d['metadata']['name']} left" for d in pages]
    left = get("get", "apiproducts,probes,backends,alertrules,maintenancewindows")
    verdict.stuck_terminating += len(left)
    verdict.details += [
        f"{o['kind']} {o['metadata']['name']} still there (finalizers {o['metadata'].get('finalizers')})"
        for o in left
    ]


# -- the run --------------------------------------------------------------------------------------------
def run_in(
    cluster,
    workdir: Path,
    namespace: str,
    *,
    seed: int,
    kills: int,
    probes: int,
    kill_every=(2.0, 6.0),
    api_stop: float = 0.0,
    receiver_outage: float = 0.0,
    replicas: int = 2,
    quiet_timeout: float = 900.0,
    say=print,
) -> tuple[Verdict, dict]:
    rng = random.Random(seed)
    say(
        f"chaos seed {seed}: {kills} kills, {replicas} replicas, {probes} probes, API server stop "
        f"{api_stop:.0f}s, receiver outage {receiver_outage:.0f}s"
    )
    cluster.kubectl("create", "namespace", namespace, check=False)
    started = time.monotonic()
    outage_end = 0.0
    restarts_on_their_own: list[int] = []
    with (
        Receivers(workdir / "receivers.jsonl") as receivers,
        smtp_server(workdir / "smtp.jsonl") as (port, mails),
        Targets() as targets,
    ):
        scenario = Scenario(cluster, namespace, rng, targets, receivers, port, probes)
        operators = Replicas(cluster, workdir, namespace, replicas, rng)
        operators.start()
        try:
            scenario.setup()
            # The receiver outage starts early, so that kills, leader changes and the API
            # server's stop all happen while deliveries are failing; the kills go on until it ends.
            disruptions = []
            if receiver_outage:
                disruptions.append(("outage", max(1, kills // 5)))
            if api_stop:
                disruptions.append(("api", 2 * kills // 3))
            while operators.kills < kills or time.monotonic() < outage_end:
                next_kill = time.monotonic() + rng.uniform(*kill_every)
                while time.monotonic() < next_kill:
                    scenario.step()
                    time.sleep(rng.uniform(0.2, 1.2))
                victim = operators.kill()
                scenario.note(f"SIGKILL #{operators.kills} (replica {victim.index})")
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0.5, 3))  # sometimes nobody runs for a while
                restarts_on_their_own += operators.revive()
                for what, at in list(disruptions):
                    if operators.kills >= at:
                        disruptions.remove((what, at))
                        if what == "outage":
                            say(f"receivers answer 503 for {receiver_outage:.0f}s")
                            outage_end = time.monotonic() + receiver_outage
                            receivers.fail_until = outage_end
                        else:
                            say(f"API server killed, started again after {api_stop:.0f}s")
                            scenario.note("API server killed")

                            def flip():
                                targets.down.symmetric_difference_update({f"p{rng.randrange(probes)}"})

                            stop_apiserver(cluster, api_stop, flip)
                            scenario.note("API server back")
                            restarts_on_their_own += operators.revive()
                if operators.kills % 10 == 0:
                    say(
                        f"  {operators.kills} kills ({operators.leader_kills} of the leader), "
                        f"{time.monotonic() - started:.0f}s"
                    )
            receivers.fail_until = 0.0
            restarts_on_their_own += operators.revive()
            say("calm: everything up and matching, windows deleted")
            scenario.calm()
            wait_quiet(cluster, namespace, timeout=quiet_timeout)
            say("deleting everything")
            cluster.kubectl(
                "delete",
                "alertrules,probes,maintenancewindows,apiproducts,backends",
                "--all",
                "-n",
                namespace,
                "--wait=false",
                check=False,
                timeout=60,
            )
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                proc = cluster.kubectl(
                    "get",
                    "apiproducts,probes,alertrules,maintenancewindows",
                    "-n",
                    namespace,
                    "-o",
                    "name",
                    check=False,
                    timeout=60,
                )
                if proc.returncode == 0 and not proc.stdout.strip():
                    break
                time.sleep(2)
            time.sleep(3)  # the last deliveries' echoes
            verdict = judge(receivers, mails)
            final_checks(cluster, namespace, verdict)
        finally:
            operators.stop()
            (workdir / "scenario.log").write_text("\n".join(scenario.log) + "\n")
    facts = {
        "seed": seed,
        "kills": operators.kills,
        "leader_kills": operators.leader_kills,
        "replicas": replicas,
        "exits_on_their_own": len(restarts_on_their_own),
        "probes": probes,
        "api_stop_s": api_stop,
        "receiver_outage_s": receiver_outage,
        "seconds": round(time.monotonic() - started),
        "steps": len(scenario.log),
    }
    return verdict, facts


def wait_quiet(cluster, namespace: str, timeout: float) -> None:
    """Until no alert is open or owed and no notice is pending (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = cluster.kubectl(
            "get",
            "alertrules,maintenancewindows,incidents",
            "-n",
            namespace,
            "-o",
            "json",
            check=False,
            timeout=60,
        )
        if proc.returncode == 0:
            items = json.loads(proc.stdout)["items"]
            busy = (
                [o for o in items if o["kind"] == "MaintenanceWindow"]
                + [
                    o
                    for o in items
                    if o["kind"] == "Incident"
                    and (
                        (o.get("status") or {}).get("phase") != "Resolved"
                        or any(
                            n.get("state") == "Sending" for n in (o.get("status") or {}).get("notices") or []
                        )
                    )
                ]
                + [
                    a
                    for o in items
                    if o["kind"] == "AlertRule"
                    for a in (o.get("status") or {}).get("alerts") or []
                    if a.get("state") != "resolved" or a.get("outstanding")
                ]
            )
            if not busy:
                return
        time.sleep(2)


def table(verdict: Verdict, facts: dict) -> str:
    rows = [
        ("lost notifications", verdict.lost),
        ("duplicates beyond dedup keys", verdict.duplicates_beyond_keys),
        ("triggers without exactly one resolve", verdict.triggers_without_one_resolve),
        ("maintenance pages left on", verdict.pages_left_on),
        ("objects stuck terminating", verdict.stuck_terminating),
    ]
    out = ["| what | count |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    out.append(
        f"\n{facts['kills']} SIGKILLs over {facts['seconds']} s (seed {facts['seed']}), "
        f"{facts.get('leader_kills', 0)} of them of the leader of {facts.get('replicas', 1)} replicas "
        f"(leader changes), {facts.get('exits_on_their_own', 0)} exits on their own (restarted); "
        f"API server killed for {facts.get('api_stop_s', 0):.0f} s, receivers 503 for "
        f"{facts.get('receiver_outage_s', 0):.0f} s; {verdict.incidents} alert incidents, {verdict.notices} "
        f"maintenance notices, {verdict.incident_notices} incident notices; copies within a dedup key "
        f"(collapsed by receivers): {verdict.copies_within_keys}"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--kills", type=int, default=None, help="SIGKILLs (default 100, --quick 12)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    kills = args.kills or (12 if args.quick else 100)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pitwall-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"seed {seed} (replay: python -m bench.chaos --seed {seed}{' --quick' if args.quick else ''}); "
        f"logs in {workdir}",
        flush=True,
    )
    with control_plane(workdir) as cluster:
        verdict, facts = run_in(
            cluster,
            workdir,
            NAMESPACE,
            seed=seed,
            kills=kills,
            probes=4 if args.quick else 6,
            api_stop=10 if args.quick else 30,
            receiver_outage=20 if args.quick else 600,
            quiet_timeout=300 if args.quick else 900,
            say=lambda s: print(s, flush=True),
        )
    text = table(verdict, facts)
    print(text)
    for line in verdict.details[:50]:
        print("  -", line)
    if not args.no_write:
        info = machine()
        RESULTS.mkdir(parents=True, exist_ok=True)
        with open(RESULTS / "chaos.md", "a") as out:
            out.write(
                f"\n## {info['date']}: {'quick' if args.quick else 'full'} run, seed {seed}\n\n"
                f"Machine: {info['nproc']} cores ({info['cpu_model']}), {info['memory_gib']} GiB, load "
                f"{info['loadavg']} at the end, shared with other work; commit {info['commit']}.\n\n"
                f"{text}\n" + "".join(f"\n- {d}" for d in verdict.details[:20]) + "\n"
            )
    return 0 if verdict.ok() else 1


if __name__ == "__main__":
    sys.exit(main())

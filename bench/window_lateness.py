"""Maintenance windows open and close on time whatever their receivers do (issue 21, item 2).

    python -m bench.window_lateness            # 6 windows, 25 failing recipients each
    python -m bench.window_lateness --quick    # 3 windows

Before the outbox, each failing notice was retried 8 times inside the window's reconcile, one
recipient after another: a window scheduled 13:06-13:09 opened at 13:08:18 and closed at 13:11:15.
Here every recipient fails: consumer webhooks that answer 503 after 2 s, webhooks on a closed
port, and consumer e-mail through an SMTP server that answers 451 (try again later) to every
mail, so every notice is retried with backoff. The windows are polled every 0.25 s; lateness is
the first poll that shows the new phase minus the scheduled instant, so it includes up to 0.25 s
of polling and the time one ``kubectl get`` takes on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .common import RESULTS, Operator, control_plane, machine, percentile

NAMESPACE = "bench-windows"


class SlowFailing:
    """Answers 503 after ``delay`` seconds to every POST, counting them."""

    def __init__(self, delay: float = 2.0):
        self.count = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.count += 1
                time.sleep(delay)
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@contextlib.contextmanager
def smtp_try_later():
    """An SMTP server that answers every mail with 451 (a transient refusal: retried)."""
    from aiosmtpd.controller import Controller

    from pitwall_testing.cluster import free_port

    class Refuse:
        count = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            Refuse.count += 1
            return "451 4.3.0 try again later"

    port = free_port()
    controller = Controller(Refuse(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, Refuse
    finally:
        controller.stop()


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(workdir: Path, windows: int, consumers: int) -> dict:
    from pitwall_testing.cluster import free_port

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    receiver = SlowFailing()
    with control_plane(workdir) as cluster, smtp_try_later() as (smtp_port, refusals):
        kubectl = lambda *a, **k: cluster.kubectl(*a, "-n", NAMESPACE, **k)  # noqa: E731
        cluster.kubectl("create", "namespace", NAMESPACE)
        apply = lambda obj: kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))  # noqa: E731
        apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "relay", "labels": {"pitwall.dev/use": "receivers"}},
                "stringData": {"url": f"smtp://127.0.0.1:{smtp_port}"},
            }
        )
        contacts = []
        for i in range(consumers):
            contact = [
                {"webhook": f"{receiver.url}/c{i}"},
                {"webhook": f"{closed}/c{i}"},
                {"email": f"ops{i}@consumer.example"},
            ][i % 3]
            contacts.append({"name": f"consumer-{i}", "versions": ["v1"], "contact": contact})
        apply(
            {
                "apiVersion": "pitwall.dev/v1alpha1",
                "kind": "ApiProduct",
                "metadata": {"name": "shop"},
                "spec": {
                    "displayName": "Shop",
                    "owner": {"team": "shop"},
                    "versions": [{"name": "v1", "image": "registry.example.com/shop:1"}],
                    "consumers": contacts,
                },
            }
        )
        with Operator(cluster, workdir, NAMESPACE):
            first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=40)
            schedule = {}
            for i in range(windows):
                start = first + timedelta(seconds=15 * i)
                end = start + timedelta(seconds=20)
                name = f"w{i}"
                schedule[name] = (start, end)
                apply(
                    {
                        "apiVersion": "pitwall.dev/v1alpha1",
                        "kind": "MaintenanceWindow",
                        "metadata": {"name": name},
                        "spec": {
                            "reason": "bench",
                            "schedule": {"start": stamp(start), "duration": "20s"},
                            "targets": {"apiProducts": {"names": ["shop"]}},
                            "notice": {
                                "leadTime": "30s",
                                "consumerEmail": {"secretRef": {"name": "relay", "key": "url"}},
                            },
                        },
                    }
                )
            seen: dict[tuple[str, str], datetime] = {}
            deadline = max(e for _, e in schedule.values()) + timedelta(seconds=60)
            last_items: list = []
            while datetime.now(UTC) < deadline and len(seen) < 2 * windows:
                proc = kubectl("get", "maintenancewindows", "-o", "json", check=False)
                now = datetime.now(UTC)
                if proc.returncode == 0:
                    last_items = json.loads(proc.stdout)["items"]
                    for item in last_items:
                        phase = (item.get("status") or {}).get("phase")
                        if phase in ("Active", "Completed"):
                            seen.setdefault((item["metadata"]["name"], phase), now)
                time.sleep(0.25)
    rows = []
    for name, (start, end) in schedule.items():
        opened, closed_at = seen.get((name, "Active")), seen.get((name, "Completed"))
        rows.append(
            {
                "window": name,
                "start_late_s": round((opened - start).total_seconds(), 2) if opened else None,
                "end_late_s": round((closed_at - end).total_seconds(), 2) if closed_at else None,
            }
        )
    notices = [n for item in last_items for n in (item.get("status") or {}).get("notices") or []]
    return {
        "rows": rows,
        "webhook_tries": receiver.count,
        "smtp_refusals": refusals.count,
        "notices": len(notices),
        "notices_delivered": sum(1 for n in notices if n.get("delivered")),
        "pending_at_end": sum(len(n.get("pending") or []) for n in notices),
        "consumers": consumers,
    }


def report(result: dict, info: dict) -> str:
    starts = [r["start_late_s"] for r in result["rows"] if r["start_late_s"] is not None]
    ends = [r["end_late_s"] for r in result["rows"] if r["end_late_s"] is not None]
    lines = [
        f"## {info['date']}: window lateness with every receiver failing",
        "",
        f"Machine: {info['nproc']} cores ({info['cpu_model']}), {info['memory_gib']} GiB, load {info['loadavg']} "
        f"at the end (shared with other work); commit {info['commit']}.",
        "",
        f"{len(result['rows'])} windows of 20 s, {result['consumers']} consumers each (a third answer 503 after "
        "2 s, a third on a closed port, a third by e-mail through an SMTP server answering 451). During the "
        f"run: {result['webhook_tries']} webhook tries answered 503, {result['smtp_refusals']} mails refused "
        f"with 451; {result['notices_delivered']} of {result['notices']} notices delivered, "
        f"{result['pending_at_end']} sends still owed (retried with backoff) at the end.",
        "",
        "| window | opened late (s) | closed late (s) |",
        "|---|---|---|",
    ]
    lines += [f"| {r['window']} | {r['start_late_s']} | {r['end_late_s']} |" for r in result["rows"]]
    if starts and ends:
        lines += [
            "",
            f"Start lateness: median {percentile(starts, 0.5):.2f} s, max {max(starts):.2f} s; "
            f"end lateness: median {percentile(ends, 0.5):.2f} s, max {max(ends):.2f} s "
            "(including up to 0.25 s of polling and one `kubectl get`).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.window_lateness", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pitwall-windows-"))
    result = run(workdir, windows=3 if args.quick else 6, consumers=12 if args.quick else 25)
    text = report(result, machine())
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        with open(RESULTS / "windows.md", "a") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

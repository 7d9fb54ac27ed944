"""``pitwall incident list|show|update|resolve``: the on-call engineer's side of an incident.

An update is appended to the Incident's ``spec.updates`` with its author (the kubeconfig
context's user, or ``--author``) and time, in one merge patch that carries the
resourceVersion read: two engineers posting at once never overwrite each other's update (the
second is re-read and re-applied). The operator does the rest (notices, the page, the feed).
Namespaces as kubectl: ``-n NAME``, ``-A`` for all, default the kubeconfig context's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime

from .api.incident import PROGRESS

FIELD_MANAGER = "pitwall-incident-cli"


def _namespace(args: argparse.Namespace) -> str | None:
    if getattr(args, "all_namespaces", False):
        return None
    if args.namespace:
        return str(args.namespace)
    context = _context(args)
    return (context.get("context") or {}).get("namespace") or "default"


def _context(args: argparse.Namespace) -> dict:
    from kubernetes import config as kconfig

    try:
        _, context = kconfig.list_kube_config_contexts(config_file=args.kubeconfig)
        return context or {}
    except Exception:
        return {}


def author(args: argparse.Namespace) -> str:
    """Who posts: ``--author``, else the kubeconfig context's user, else the login name."""
    if args.author:
        return str(args.author)
    user = (_context(args).get("context") or {}).get("user")
    if user:
        return str(user)
    import getpass

    return getpass.getuser()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _products(incident: dict) -> str:
    entries = (
        (incident.get("status") or {}).get("affected") or (incident.get("spec") or {}).get("products") or []
    )
    return "; ".join(f"{p.get('name')} {','.join(p.get('versions') or [])}".strip() for p in entries)


def _list(args: argparse.Namespace) -> int:
    from .kube import Kube

    async def run() -> list[dict]:
        async with Kube.from_env(args.kubeconfig) as kube:
            return await kube.list("Incident", _namespace(args))

    items = asyncio.run(run())
    if args.open:
        items = [i for i in items if (i.get("status") or {}).get("phase") != "Resolved"]
    items.sort(key=lambda i: (i.get("status") or {}).get("startedAt") or "", reverse=True)
    if args.output == "json":
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("No incidents" + (f" in namespace {_namespace(args)}" if _namespace(args) else "") + ".")
        return 0
    rows = []
    for incident in items:
        meta, sp, st = incident["metadata"], incident.get("spec") or {}, incident.get("status") or {}
        row = [
            meta["name"],
            sp.get("type", "incident"),
            st.get("phase", "-"),
            sp.get("status", "-"),
            st.get("impact", "-"),
            _products(incident),
            st.get("startedAt", "-"),
            st.get("resolvedAt") or "-",
        ]
        rows.append([meta["namespace"], *row] if args.all_namespaces else row)
    header = ["NAME", "TYPE", "PHASE", "STATUS", "IMPACT", "AFFECTS", "STARTED", "RESOLVED"]
    print(_table(rows, ["NAMESPACE", *header] if args.all_namespaces else header))
    return 0


def _get(args: argparse.Namespace) -> dict | None:
    from .kube import Kube

    async def run() -> dict | None:
        async with Kube.from_env(args.kubeconfig) as kube:
            return await kube.get("Incident", _namespace(args), args.name)

    return asyncio.run(run())


def _show(args: argparse.Namespace) -> int:
    incident = _get(args)
    if incident is None:
        print(f"Incident {args.name} not found in namespace {_namespace(args)}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(incident, indent=2))
        return 0
    sp, st = incident.get("spec") or {}, incident.get("status") or {}
    authors = {a.get("index"): a for a in st.get("updateAuthors") or []}
    print(
        f"Incident {incident['metadata']['namespace']}/{incident['metadata']['name']} ({sp.get('type', 'incident')})"
    )
    for label, value in (
        ("Title", sp.get("title")),
        ("Phase", st.get("phase")),
        ("Status", sp.get("status")),
        ("Impact", st.get("impact")),
        ("Affects", _products(incident)),
        ("Cause", st.get("cause")),
        ("Started", st.get("startedAt")),
        ("Recovered", st.get("recoveredAt")),
        ("Resolved", st.get("resolvedAt")),
        ("Resolved by", st.get("resolvedBy")),
        ("Resolution", st.get("resolution")),
        ("Report", sp.get("postIncidentReport")),
    ):
        if value:
            print(f"{label + ':':<12} {value}")
    print("\nUpdates:" if sp.get("updates") else "\nNo updates yet.")
    for index, update in enumerate(sp.get("updates") or []):
        who = update.get("author") or (authors.get(index) or {}).get("author") or "unknown"
        at = update.get("at") or (authors.get(index) or {}).get("at") or "?"
        print(f"  {at}  {update.get('status') or 'update':<13} {who}: {update.get('message')}")
    if st.get("notices"):
        print("\nNotices:")
        for notice in st["notices"]:
            failed = f", failed: {', '.join(notice['failed'])}" if notice.get("failed") else ""
            print(
                f"  {notice.get('at', '?')}  {notice.get('event')}: {notice.get('state')} to "
                f"{len(notice.get('recipients') or [])} recipients{failed}"
            )
    return 0


def _post(args: argparse.Namespace, *, status: str | None, message: str | None) -> int:
    """Append one update (and set the status / report link) with optimistic concurrency."""
    if args.report and not re.match(r"^https?://\S+$", args.report):
        print("--report must be an absolute http:// or https:// URL", file=sys.stderr)
        return 2
    if not message and not status and not args.report:
        print("nothing to post: give --message, --status or --report", file=sys.stderr)
        return 2
    namespace = _namespace(args)
    if namespace is None:
        print("-A cannot be used to post an update: name the namespace with -n", file=sys.stderr)
        return 2
    who = author(args)

    async def run() -> dict | None:
        from .errors import Conflict
        from .kube import Kube

        async with Kube.from_env(args.kubeconfig) as kube:
            for _ in range(5):
                incident = await kube.get("Incident", namespace, args.name)
                if incident is None:
                    return None
                sp = incident.get("spec") or {}
                patch: dict = {
                    "metadata": {"resourceVersion": incident["metadata"]["resourceVersion"]},
                    "spec": {},
                }
                if message:
                    update = {"message": message, "author": who, "at": _now()}
                    if status:
                        update["status"] = status
                    patch["spec"]["updates"] = [*(sp.get("updates") or []), update]
                if status:
                    patch["spec"]["status"] = status
                if args.report:
                    patch["spec"]["postIncidentReport"] = args.report
                try:
                    return await kube.request(
                        "PATCH",
                        kube._path("Incident", namespace, args.name),
                        params={"fieldManager": FIELD_MANAGER},
                        body=patch,
                        content_type="application/merge-patch+json",
                    )
                except Conflict:
                    continue
            raise SystemExit(f"Incident {args.name} kept changing; try again")

    from .errors import KubeError

    try:
        result = asyncio.run(run())
    except KubeError as exc:
        print(f"cannot update Incident {args.name}: {exc}", file=sys.stderr)
        return 1
    if result is None:
        print(f"Incident {args.name} not found in namespace {namespace}", file=sys.stderr)
        return 1
    what = f"status {status}" if status else "update"
    print(f"posted {what} to incident {namespace}/{args.name} as {who}")
    return 0


def _update(args: argparse.Namespace) -> int:
    return _post(args, status=args.status, message=args.message)


def _resolve(args: argparse.Namespace) -> int:
    return _post(args, status="resolved", message=args.message or "This incident has been resolved.")


def register(sub) -> None:
    incident = sub.add_parser("incident", help="incidents: list, show, post updates, resolve")
    verbs = incident.add_subparsers(dest="verb", required=True)

    def common(parser, *, all_namespaces: bool = False):
        parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
        if all_namespaces:
            parser.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
        parser.add_argument("--kubeconfig")

    listing = verbs.add_parser("list", help="incidents, newest first")
    listing.add_argument("--open", action="store_true", help="only incidents not resolved")
    listing.add_argument("-o", "--output", choices=["table", "json"], default="table")
    common(listing, all_namespaces=True)
    listing.set_defaults(func=_list)

    show = verbs.add_parser("show", help="one incident with its updates (and who wrote them) and notices")
    show.add_argument("name")
    show.add_argument("-o", "--output", choices=["text", "json"], default="text")
    common(show)
    show.set_defaults(func=_show)

    update = verbs.add_parser("update", help="post an update consumers read; optionally set the status")
    update.add_argument("name")
    update.add_argument("-m", "--message", help="what consumers read")
    update.add_argument(
        "--status",
        choices=[p for p in PROGRESS if p != "resolved"],
        help="investigating, identified or monitoring (use `resolve` to resolve)",
    )
    update.add_argument("--report", help="link to the post-incident report")
    update.add_argument("--author", help="who writes (default: the kubeconfig user)")
    common(update)
    update.set_defaults(func=_update)

    resolve = verbs.add_parser("resolve", help="resolve the incident now (consumers are told)")
    resolve.add_argument("name")
    resolve.add_argument(
        "-m", "--message", help="the closing words (default: This incident has been resolved.)"
    )
    resolve.add_argument("--report", help="link to the post-incident report")
    resolve.add_argument("--author", help="who writes (default: the kubeconfig user)")
    common(resolve)
    resolve.set_defaults(func=_resolve)

"""The CLI's write commands: declare a backend down or up, scale a version, set a version's env.

Each is one small patch of the object a user owns, the same edit ``kubectl`` would make
(the commands print it), so GitOps users can see what changed and do it their way:

- ``backend down|up`` annotates the Backend (``backends/declared.py``);
- ``scale`` and ``set env`` change one version of an ApiProduct with a JSON patch that first
  tests the version's name at its index: a merge patch cannot do it (it replaces the whole
  ``versions`` list), and the test makes a concurrent reorder fail instead of editing the
  wrong version.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

from . import durations
from .backends.declared import down_patch, up_patch
from .views import _namespace, namespace_flags


def version_patch(product: dict, version: str, field: str, value) -> list[dict]:
    """A JSON patch setting ``spec.versions[name=version].field``; ValueError if no such version. Pure."""
    versions = (product.get("spec") or {}).get("versions") or []
    for index, entry in enumerate(versions):
        if entry.get("name") == version:
            path = f"/spec/versions/{index}"
            return [
                {"op": "test", "path": f"{path}/name", "value": version},
                {"op": "add", "path": f"{path}/{field}", "value": value},
            ]
    names = ", ".join(v.get("name", "?") for v in versions) or "none"
    raise ValueError(
        f"ApiProduct {product['metadata']['name']} has no version {version!r} (versions: {names})"
    )


def env_with(current: list[dict], assignments: list[str]) -> list[dict]:
    """``env`` with ``NAME=VALUE`` set (replacing a same-named entry in place) and ``NAME-`` removed. Pure."""
    env = [dict(e) for e in current]
    for assignment in assignments:
        if assignment.endswith("-") and "=" not in assignment:
            env = [e for e in env if e.get("name") != assignment[:-1]]
            continue
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise ValueError(f"{assignment!r}: use NAME=VALUE to set, NAME- to remove")
        for entry in env:
            if entry.get("name") == name:
                entry.clear()
                entry.update({"name": name, "value": value})
                break
        else:
            env.append({"name": name, "value": value})
    return env


async def _patch(args: argparse.Namespace, kind: str, build) -> tuple[int, str]:
    from .kube import Kube, KubeError

    namespace = _namespace(args)
    async with Kube.from_env(args.kubeconfig) as kube:
        obj = await kube.get(kind, namespace, args.name)
        if obj is None:
            return 1, f"{kind} {args.name} not found in namespace {namespace}"
        try:
            patch, patch_type, said = build(obj)
        except ValueError as exc:
            return 1, str(exc)
        try:
            await kube.patch(kind, namespace, args.name, patch, patch_type=patch_type)
        except KubeError as exc:
            return 1, f"{kind} {args.name}: {exc}"
        return 0, said


def _run(args: argparse.Namespace, kind: str, build) -> int:
    code, message = asyncio.run(_patch(args, kind, build))
    print(message, file=sys.stderr if code else sys.stdout)
    return code


def _backend_down(args: argparse.Namespace) -> int:
    by = args.by or getpass.getuser()

    def build(obj):
        patch = down_patch(args.reason, by, durations.rfc3339())
        return (
            patch,
            "merge",
            (
                f"backend {args.name} declared down by {by}: {args.reason.strip()}\n"
                f"(kubectl -n {obj['metadata']['namespace']} annotate backend {args.name} "
                f"pitwall.dev/declared-down=... ; back: pitwall backend up {args.name} "
                f"-n {obj['metadata']['namespace']})"
            ),
        )

    return _run(args, "Backend", build)


def _backend_up(args: argparse.Namespace) -> int:
    def build(obj):
        return (
            up_patch(),
            "merge",
            f"backend {args.name}: declaration removed, its health check decides again",
        )

    return _run(args, "Backend", build)


def _scale(args: argparse.Namespace) -> int:
    if args.replicas < 0:
        print("replicas must be 0 or more", file=sys.stderr)
        return 1

    def build(obj):
        patch = version_patch(obj, args.version, "replicas", args.replicas)
        return (
            patch,
            "json",
            (
                f"apiproduct {args.name} {args.version}: replicas {args.replicas}\n"
                f"(kubectl -n {obj['metadata']['namespace']} patch apiproduct {args.name} "
                f"--type json -p '{json.dumps(patch)}')"
            ),
        )

    return _run(args, "ApiProduct", build)


def _set_env(args: argparse.Namespace) -> int:
    def build(obj):
        current = next(
            (
                v.get("env") or []
                for v in (obj.get("spec") or {}).get("versions") or []
                if v.get("name") == args.version
            ),
            [],
        )
        patch = version_patch(obj, args.version, "env", env_with(current, args.assignments))
        return patch, "json", f"apiproduct {args.name} {args.version}: env " + " ".join(args.assignments)

    return _run(args, "ApiProduct", build)


def register(sub) -> None:
    backend = sub.add_parser(
        "backend", help="declare a backend down (its owner announced an outage) or up again"
    )
    backend_sub = backend.add_subparsers(dest="backend_command", required=True)
    down = backend_sub.add_parser("down", help="mark the backend Unavailable until `pitwall backend up`")
    down.add_argument("name")
    down.add_argument("--reason", required=True, help="what the owner announced (shown in status and alerts)")
    down.add_argument("--by", help="who declares it (default: your user name)")
    namespace_flags(down, all_namespaces=False)
    down.set_defaults(func=_backend_down)
    up = backend_sub.add_parser("up", help="remove the declaration: the health check decides again")
    up.add_argument("name")
    namespace_flags(up, all_namespaces=False)
    up.set_defaults(func=_backend_up)

    scale = sub.add_parser("scale", help="set one version's replicas (kubectl scale cannot: see README)")
    scale.add_argument("name", metavar="PRODUCT")
    scale.add_argument("version")
    scale.add_argument("replicas", type=int)
    namespace_flags(scale, all_namespaces=False)
    scale.set_defaults(func=_scale)

    set_ = sub.add_parser("set", help="set fields of one version of an ApiProduct")
    set_sub = set_.add_subparsers(dest="set_command", required=True)
    env = set_sub.add_parser(
        "env", help="set (NAME=VALUE) or remove (NAME-) environment variables of a version"
    )
    env.add_argument("name", metavar="PRODUCT")
    env.add_argument("version")
    env.add_argument("assignments", nargs="+", metavar="NAME=VALUE|NAME-")
    namespace_flags(env, all_namespaces=False)
    env.set_defaults(func=_set_env)

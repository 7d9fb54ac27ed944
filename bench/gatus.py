"""Gatus, the probe benchmark's reference: built from the Go module proxy, cached outside the repo.

``go install github.com/TwiN/gatus/v5@latest`` with GOBIN set to ``~/.cache/pitwall/gatus``
(or ``$PITWALL_CACHE/gatus``); the binary is never committed. When it cannot be built,
:class:`Unavailable` carries the exact reason, which the report writes down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from .common import spawn_ready, stop_group

MODULE = "github.com/TwiN/gatus/v5@latest"


class Unavailable(RuntimeError):
    """Gatus could not be built or started here; the message says exactly why."""


def cache_dir() -> Path:
    return Path(os.environ.get("PITWALL_CACHE", Path.home() / ".cache" / "pitwall")) / "gatus"


def build() -> Path:
    """The cached binary, or build it now (bounded to 20 minutes)."""
    binary = cache_dir() / "gatus"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise Unavailable("no Go toolchain on PATH to run `go install " + MODULE + "`")
    cache_dir().mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([go, "install", MODULE], env={**os.environ, "GOBIN": str(cache_dir())},
                              capture_output=True, text=True, timeout=1200, cwd=cache_dir())
    except subprocess.TimeoutExpired:
        raise Unavailable(f"`go install {MODULE}` did not finish within 20 minutes") from None
    if proc.returncode or not binary.exists():
        detail = " ".join((proc.stderr or proc.stdout).split())[-600:]
        raise Unavailable(f"`GOBIN={cache_dir()} go install {MODULE}` failed (exit {proc.returncode}): {detail}")
    return binary


def config(urls: list[str], interval_s: int, port: int) -> dict:
    """The same endpoints as the Probes: one GET each, 200 expected, the same interval.

    Everything else is Gatus' default (memory storage; ``concurrency`` 3 in current releases),
    plus ``metrics: true`` so /metrics is there to cross-check the count.
    """
    return {
        "metrics": True,
        "web": {"address": "127.0.0.1", "port": port},
        "endpoints": [{"name": f"p{i:05d}", "group": "bench", "url": url, "interval": f"{interval_s}s",
                       "client": {"timeout": "2s"}, "conditions": ["[STATUS] == 200"]}
                      for i, url in enumerate(urls)],
    }


class Gatus:
    """A running Gatus process; ``pid`` for /proc sampling. Stopped (its group) on exit."""

    def __init__(self, binary: Path, workdir: Path, cfg: dict):
        self.binary = binary
        self.workdir = workdir
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Gatus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        env = {**os.environ, "GATUS_CONFIG_PATH": str(path), "GATUS_LOG_LEVEL": "WARN"}
        try:
            self.proc = spawn_ready([str(self.binary)], log_path=self.workdir / "gatus.log", cwd=self.workdir,
                                    env=env, url=f"http://127.0.0.1:{self.cfg['web']['port']}/health",
                                    timeout=120, what="Gatus")
        except RuntimeError as exc:
            raise Unavailable(str(exc)) from None
        return self

    def __exit__(self, *exc) -> None:
        stop_group(self.proc)

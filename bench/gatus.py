"""Gatus, the probe benchmark's reference: built here from its source tree, never committed.

Where the binary comes from, first found wins:

1. ``--gatus-bin PATH`` (``python -m bench.run``) or ``$PITWALL_GATUS_BIN``: a Gatus binary.
2. ``~/.cache/pitwall/gatus/gatus`` (``$PITWALL_CACHE/gatus/gatus``): built before.
3. Built now with ``go build .`` from a source tree of github.com/TwiN/gatus: ``$PITWALL_GATUS_SRC``
   (a checked-out tree), or the tree of ``HEAD`` of a git directory ``$PITWALL_GATUS_GIT``
   (default ``/work/.mirror/TwiN+gatus/repo``, a mirror of the repository) exported with
   ``git archive``. Its dependencies come from the Go module proxy. The module proxy itself
   refuses ``github.com/TwiN/gatus/v5``, so ``go install ...@latest`` cannot work.

Two facts about Gatus shape the measurement (read in its source, HEAD 08c46354):

- ``watchdog.Monitor`` starts the endpoints 222 ms apart, so 5,000 endpoints take 18.5 minutes
  to all be running: the benchmark measures only once every endpoint has a result
  (:func:`endpoints_started`, from Gatus' own ``gatus_results_total`` series).
- ``concurrency`` (checks in flight at once) defaults to 3; ``concurrency: 0`` is reset to 3
  unless ``disable-monitoring-lock`` is set (``config.ValidateAndSetConcurrencyDefaults``), but
  any positive value is kept. So the benchmark runs it at the default and at
  :data:`SUSTAINING` (the same number of checks in flight as Pitwall allows).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import yaml

from .common import spawn_ready, stop_group

DEFAULT_CONCURRENCY = 3  # config.DefaultConcurrency
SUSTAINING = 100  # = pitwall.probes.monitor.CONCURRENCY
START_SPACING_S = 0.222  # watchdog.Monitor sleeps this long before starting each endpoint
MIRROR = Path("/work/.mirror/TwiN+gatus/repo")


class Unavailable(RuntimeError):
    """Gatus could not be built or started here; the message says exactly why."""


def cache_dir() -> Path:
    return Path(os.environ.get("PITWALL_CACHE", Path.home() / ".cache" / "pitwall")) / "gatus"


def _go_build(src: Path, out: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise Unavailable(f"no Go toolchain on PATH to run `go build .` in {src}")
    tmp = out.with_suffix(".tmp")
    try:
        proc = subprocess.run(
            [go, "build", "-o", str(tmp), "."], cwd=src, capture_output=True, text=True, timeout=1800
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"`go build .` in {src} did not finish within 30 minutes") from None
    if proc.returncode or not tmp.exists():
        detail = " ".join((proc.stderr or proc.stdout).split())[-600:]
        raise Unavailable(f"`go build .` in {src} failed (exit {proc.returncode}): {detail}")
    tmp.rename(out)


def build(binary: str | None = None) -> Path:
    """The Gatus binary to run (see the module's docstring for where it comes from)."""
    given = binary or os.environ.get("PITWALL_GATUS_BIN")
    if given:
        path = Path(given).expanduser()
        if not os.access(path, os.X_OK):
            raise Unavailable(
                f"Gatus binary {path} (--gatus-bin / PITWALL_GATUS_BIN) is not an executable file"
            )
        return path
    out = cache_dir() / "gatus"
    if out.exists():
        return out
    cache_dir().mkdir(parents=True, exist_ok=True)
    if os.environ.get("PITWALL_GATUS_SRC"):
        _go_build(Path(os.environ["PITWALL_GATUS_SRC"]), out)
        return out
    git_dir = Path(os.environ.get("PITWALL_GATUS_GIT", MIRROR))
    if not git_dir.exists():
        raise Unavailable(
            f"no Gatus binary and no source: pass --gatus-bin, or set PITWALL_GATUS_SRC to a "
            f"checkout of github.com/TwiN/gatus (or PITWALL_GATUS_GIT to its git directory; "
            f"{git_dir} does not exist)"
        )
    with tempfile.TemporaryDirectory(prefix="gatus-src-") as tmp:
        archive = subprocess.run(
            ["git", "--git-dir", str(git_dir), "archive", "HEAD"], capture_output=True, timeout=300
        )
        if archive.returncode:
            raise Unavailable(
                f"git archive of {git_dir} failed: {archive.stderr.decode(errors='replace')[-300:]}"
            )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True, timeout=300)
        _go_build(Path(tmp), out)
    return out


def version(binary: Path) -> str:
    """What was built: the commit of the source when known (the cache keeps the tree's HEAD)."""
    git_dir = Path(os.environ.get("PITWALL_GATUS_GIT", MIRROR))
    if binary == cache_dir() / "gatus" and git_dir.exists():
        proc = subprocess.run(
            ["git", "--git-dir", str(git_dir), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        if proc.returncode == 0:
            return f"github.com/TwiN/gatus at {proc.stdout.strip()}"
    return str(binary)


def config(urls: list[str], interval_s: int, port: int, concurrency: int = DEFAULT_CONCURRENCY) -> dict:
    """The same endpoints as the Probes: one GET each, 200 expected, the same interval.

    Everything else is Gatus' default (memory storage), plus ``metrics: true`` (to see which
    endpoints have started) and ``concurrency``."""
    return {
        "metrics": True,
        "concurrency": concurrency,
        "web": {"address": "127.0.0.1", "port": port},
        "endpoints": [
            {
                "name": f"p{i:05d}",
                "group": "bench",
                "url": url,
                "interval": f"{interval_s}s",
                "client": {"timeout": "2s"},
                "conditions": ["[STATUS] == 200"],
            }
            for i, url in enumerate(urls)
        ],
    }


def endpoints_started(port: int) -> int:
    """How many endpoints have at least one result (distinct ``key`` of ``gatus_results_total``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode(errors="replace")
    return len(set(re.findall(r'^gatus_results_total\{[^}]*key="([^"]+)"', text, re.M)))


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

    @property
    def port(self) -> int:
        return int(self.cfg["web"]["port"])

    def __enter__(self) -> Gatus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        env = {**os.environ, "GATUS_CONFIG_PATH": str(path), "GATUS_LOG_LEVEL": "WARN"}
        try:
            self.proc = spawn_ready(
                [str(self.binary)],
                log_path=self.workdir / "gatus.log",
                cwd=self.workdir,
                env=env,
                url=f"http://127.0.0.1:{self.port}/health",
                timeout=120,
                what="Gatus",
            )
        except RuntimeError as exc:
            raise Unavailable(str(exc)) from None
        return self

    def __exit__(self, *exc) -> None:
        stop_group(self.proc)

"""blackbox_exporter, a second reference for the probe benchmark: a Go prober from Debian's packages.

Gatus is the reference the issue names, but the Go module proxy refuses it here. The issue's
other anchor, Prometheus' blackbox_exporter (with prometheus-operator's Probe), is in Debian
(``prometheus-blackbox-exporter``), so its CPU per check can be put beside Pitwall's. It runs
a check when asked (``GET /probe?module=...&target=...``), so a driver process plays
Prometheus: every target scraped on its own fixed phase of the interval, like Prometheus
spreads its scrapes. The driver's CPU is reported separately and not counted as the exporter's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .common import ROOT, spawn, spawn_ready, stop_group

PACKAGE = "prometheus-blackbox-exporter"


class Unavailable(RuntimeError):
    """blackbox_exporter could not be installed or started here; the message says why."""


def binary() -> Path:
    """Debian's binary; installed with apt-get when missing and this process may do so."""
    found = shutil.which(PACKAGE) or shutil.which("blackbox_exporter")
    if found:
        return Path(found)
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise Unavailable(f"{PACKAGE} is not installed (apt-get install {PACKAGE})")
    proc = subprocess.run(
        [apt, "install", "-y", "--no-install-recommends", PACKAGE],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which(PACKAGE)
    if proc.returncode or not found:
        detail = " ".join((proc.stderr or proc.stdout).split())[-400:]
        raise Unavailable(f"apt-get install {PACKAGE} failed (exit {proc.returncode}): {detail}")
    return Path(found)


def config(timeout_s: int) -> dict:
    """The Probes' check: one GET, 200 expected, no redirects followed, the same timeout."""
    return {
        "modules": {
            "http_200": {
                "prober": "http",
                "timeout": f"{timeout_s}s",
                "http": {
                    "valid_status_codes": [200],
                    "follow_redirects": False,
                    "preferred_ip_protocol": "ip4",
                    "ip_protocol_fallback": False,
                },
            }
        }
    }


class Exporter:
    """blackbox_exporter and its driver, both running; ``pid`` and ``driver_pid`` for /proc."""

    def __init__(
        self, path: Path, workdir: Path, port: int, urls: list[str], interval_s: int, timeout_s: int
    ):
        self.path = path
        self.workdir = workdir
        self.port = port
        self.urls = urls
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen | None = None
        self.driver: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def driver_pid(self) -> int:
        assert self.driver is not None
        return self.driver.pid

    def __enter__(self) -> Exporter:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "blackbox.yml"
        cfg.write_text(yaml.safe_dump(config(self.timeout_s)))
        (self.workdir / "urls.txt").write_text("\n".join(self.urls) + "\n")
        try:
            self.proc = spawn_ready(
                [
                    str(self.path),
                    f"--config.file={cfg}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                log_path=self.workdir / "blackbox.log",
                cwd=self.workdir,
                url=f"http://127.0.0.1:{self.port}/-/healthy",
                timeout=60,
                what="blackbox_exporter",
            )
        except RuntimeError as exc:
            raise Unavailable(str(exc)) from None
        self.driver = spawn(
            [
                sys.executable,
                "-m",
                "bench.scraper",
                "--port",
                str(self.port),
                "--module",
                "http_200",
                "--interval",
                str(self.interval_s),
                "--urls",
                str(self.workdir / "urls.txt"),
            ],
            log_path=self.workdir / "driver.log",
            cwd=ROOT,
        )
        return self

    def __exit__(self, *exc) -> None:
        stop_group(self.driver)
        stop_group(self.proc)

    def driver_counts(self) -> dict:
        """What the driver saw over its whole run (its last line, written when it stops)."""
        lines = (self.workdir / "driver.log").read_text(errors="replace").strip().splitlines()
        try:
            return json.loads(lines[-1]) if lines else {}
        except ValueError:
            return {}

"""Probes: synthetic and multi-step functional checks, independent of the cluster.

``spec`` parses a Probe spec (or a Backend's ``health`` block) into a ``Check``; ``client``
builds the HTTP clients (TLS, proxy) over the operator-wide ``egress`` policy; ``engine.run_check`` runs a check
once; ``state`` folds results into Up/Down with thresholds; ``stats`` keeps latency and
availability; ``coalesce`` decides when status is worth writing; ``scheduler`` runs every
probe of the process on one asyncio loop.
"""

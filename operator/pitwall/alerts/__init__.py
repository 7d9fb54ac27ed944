"""Alerting: rules (what to watch), state (when to notify), payloads (what to say), delivery (sending).

Everything but :mod:`.delivery` is pure, so the decisions are unit-tested without a cluster or a
network; the operator reads objects and Secrets, calls these, and writes the AlertRule status.
"""

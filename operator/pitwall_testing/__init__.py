"""Test, benchmark and ``make dev`` support: a local control plane, pod servers, a Prometheus.

A sibling of the ``pitwall`` package, not part of it: the wheel and the image carry only
``pitwall`` (pyproject.toml's package discovery), and ``pitwall`` never imports this
(.importlinter's ``testing`` contract). It is used from the source tree: tests/, bench/,
hack/dev.py and ``make cluster``.
"""

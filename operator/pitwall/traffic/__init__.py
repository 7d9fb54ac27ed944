"""Real traffic from Prometheus: what consumers experience, per product, version, consumer and route.

``promql`` builds the queries and ``figures`` turns Prometheus' answers into the figures Pitwall
shows and judges (both pure); ``source`` is the one read-only Prometheus client (egress policy,
auth, TLS, a bounded query rate); ``service`` asks Prometheus once per cycle for every product
that declares ``spec.traffic``, a few queries per batch of products, never one per version.
"""

"""Objects shared by the maintenance tests: a small namespace of products and backends."""

import pytest


def product(name, *, labels=None, versions=("v1",), backends=(), consumers=(), **spec):
    return {
        "apiVersion": "pitwall.dev/v1alpha1",
        "kind": "ApiProduct",
        "metadata": {"name": name, "namespace": "shop", "labels": dict(labels or {})},
        "spec": {
            "versions": [v if isinstance(v, dict) else {"name": v} for v in versions],
            "backends": list(backends),
            "consumers": list(consumers),
            **spec,
        },
    }


def backend(name):
    return {"apiVersion": "pitwall.dev/v1alpha1", "kind": "Backend", "metadata": {"name": name}}


@pytest.fixture
def products():
    return [
        product(
            "payments",
            labels={"domain": "payments"},
            displayName="Payments API",
            owner={"team": "payments", "contact": "payments-oncall@example.com"},
            versions=[
                {"name": "v1", "lifecycle": "deprecated"},
                {"name": "v2"},
                {"name": "v0", "lifecycle": "retired"},
            ],
            backends=[{"name": "core-banking", "criticality": "critical"}],
            consumers=[
                {"name": "acme", "versions": ["v2"], "contact": {"email": "ops@acme.example"}},
                {
                    "name": "globex",
                    "contact": {
                        "name": "Globex NOC",
                        "webhook": "https://hooks.globex.example/T0/secret-token",
                    },
                },
                {"name": "oldco", "versions": ["v0"], "contact": {"email": "it@oldco.example"}},
            ],
        ),
        product(
            "accounts",
            displayName="Accounts API",
            backends=[{"name": "core-banking", "criticality": "degradable"}],
            consumers=[{"name": "acme", "versions": ["v1"], "contact": {"email": "ops@acme.example"}}],
        ),
        product("search", backends=[{"name": "core-banking", "criticality": "optional"}]),
        product("catalog", labels={"domain": "retail"}),
    ]


@pytest.fixture
def backends():
    return [backend("core-banking"), backend("ledger")]

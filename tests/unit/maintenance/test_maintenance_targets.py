"""Targets: which products, backends and consumers a window affects."""

from tests.helpers.windows import targets

from pitwall.maintenance import targets as targeting
from pitwall.maintenance.targets import DEGRADED, UNAVAILABLE


def resolve(wanted: dict | None, products: list[dict], backends: list[dict]):
    """resolve() on ``spec.targets`` as the model parses it."""
    return targeting.resolve(targets(wanted), products, backends)


def names(affected):
    return {p.name: p.effect for p in affected.products}


def test_products_by_name_and_by_labels(products, backends):
    affected = resolve(
        {"apiProducts": {"names": ["catalog"], "matchLabels": {"domain": "payments"}}}, products, backends
    )
    assert names(affected) == {"catalog": UNAVAILABLE, "payments": UNAVAILABLE}
    assert affected.missing == ()


def test_an_empty_selector_selects_nothing(products, backends):
    assert resolve({"apiProducts": {"matchLabels": {}}}, products, backends).products == ()
    assert resolve(None, products, backends).products == ()


def test_a_backend_in_maintenance_affects_its_dependents_by_criticality(products, backends):
    affected = resolve({"backends": ["core-banking"]}, products, backends)
    assert names(affected) == {"payments": UNAVAILABLE, "accounts": DEGRADED}  # search uses it optionally
    assert affected.backends == ("core-banking",)
    accounts = next(p for p in affected.products if p.name == "accounts")
    assert accounts.reason == "depends on Backend core-banking (degradable)"


def test_a_product_targeted_and_degraded_is_unavailable(products, backends):
    affected = resolve(
        {"apiProducts": {"names": ["accounts"]}, "backends": ["core-banking"]}, products, backends
    )
    accounts = next(p for p in affected.products if p.name == "accounts")
    assert accounts.effect == UNAVAILABLE
    assert accounts.reason == "targeted; depends on Backend core-banking (degradable)"


def test_retired_versions_are_not_affected_and_their_consumers_are_not_told(products, backends):
    affected = resolve({"apiProducts": {"names": ["payments"]}}, products, backends)
    assert affected.products[0].versions == ("v1", "v2")
    assert [(c.name, c.versions) for c in affected.consumers] == [("acme", ("v2",)), ("globex", ("v1", "v2"))]
    assert affected.page_versions() == [("payments", "v1"), ("payments", "v2")]


def test_only_unavailable_products_get_the_maintenance_page(products, backends):
    affected = resolve({"backends": ["core-banking"]}, products, backends)
    assert affected.page_versions() == [("payments", "v1"), ("payments", "v2")]


def test_named_targets_that_do_not_exist_are_reported(products, backends):
    affected = resolve(
        {"apiProducts": {"names": ["payments", "ghost"]}, "backends": ["mainframe"]}, products, backends
    )
    assert affected.missing == ("ApiProduct/ghost", "Backend/mainframe")
    assert names(affected) == {"payments": UNAVAILABLE}


def test_status_block_lists_products_backends_and_consumers_without_webhook_tokens(products, backends):
    status = resolve({"backends": ["core-banking"]}, products, backends).status()
    assert status["apiProducts"] == [
        {"name": "accounts", "versions": ["v1"], "effect": DEGRADED},
        {"name": "payments", "versions": ["v1", "v2"], "effect": UNAVAILABLE},
    ]
    assert status["backends"] == ["core-banking"]
    assert status["consumers"] == [
        {
            "name": "acme",
            "apiProduct": "accounts",
            "versions": ["v1"],
            "contact": {"email": "ops@acme.example"},
        },
        {
            "name": "acme",
            "apiProduct": "payments",
            "versions": ["v2"],
            "contact": {"email": "ops@acme.example"},
        },
        {
            "name": "globex",
            "apiProduct": "payments",
            "versions": ["v1", "v2"],
            "contact": {"name": "Globex NOC", "webhook": "https://hooks.globex.example/…"},
        },
    ]
    assert "secret-token" not in str(status)

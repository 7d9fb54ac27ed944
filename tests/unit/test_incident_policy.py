"""A product's ``spec.incidents`` is read through the IncidentPolicy model: unset fields are the
model's (the CRD's) defaults, set ones are the user's, and one the model refuses counts as the
defaults with a warning naming the field (an outage is still told)."""

from __future__ import annotations

import logging

import pytest

from pitwall import durations
from pitwall.api.apiproduct import IncidentPolicy
from pitwall.api.base import default_of
from pitwall.incidents import notify
from pitwall.incidents.reconcile import IncidentService, _receivers_for
from pitwall.runtime import Runtime, Settings


def product(incidents: dict | None = None) -> dict:
    spec: dict = {"versions": [{"name": "v1", "image": "x"}], "public": True}
    if incidents is not None:
        spec["incidents"] = incidents
    return {"metadata": {"namespace": "shop", "name": "payments"}, "spec": spec}


@pytest.fixture
def service() -> IncidentService:
    return IncidentService(Runtime(kube=None, settings=Settings()))


def test_unset_fields_are_the_models_defaults_and_set_ones_win(service):
    policy = service._policy(product())
    assert policy.open is default_of(IncidentPolicy, "open") is True
    assert durations.parse(policy.merge_window) == durations.parse(default_of(IncidentPolicy, "merge_window"))
    assert policy.min_spacing == default_of(IncidentPolicy, "min_spacing")
    assert policy.notify_consumers is True and policy.receivers is None
    chosen = service._policy(product({"open": False, "mergeWindow": "30s", "notifyConsumers": False}))
    assert (chosen.open, chosen.merge_window, chosen.notify_consumers) == (False, "30s", False)
    assert chosen.min_spacing == default_of(IncidentPolicy, "min_spacing")


def test_a_policy_the_model_refuses_counts_as_the_defaults_and_is_named_once(service, caplog):
    # stored around the schema: a bound the model states, and a duration only the CRD's CEL checks
    for field, bad in (("minSpacing", ["10m"]), ("mergeWindow", "soon")):
        stored = product({field: bad, "open": False})
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pitwall.incidents"):
            first, second = service._policy(stored), service._policy(stored)
        assert first == second == IncidentPolicy()
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1 and "shop/payments" in warned[0] and f"spec.incidents.{field}" in warned[0]


def test_a_consumer_is_mailed_through_the_policys_relay_and_hooked_without_one():
    consumer = notify.Recipient(
        "acme", notify.CONSUMER, "payments", ("v1",), {"email": "ops@acme.test", "webhook": "http://hook"}
    )
    relay = IncidentPolicy.model_validate(
        {"consumerEmail": {"secretRef": {"name": "smtp", "key": "url"}, "from": "status@shop.test"}}
    )
    mail, hook = _receivers_for(consumer, relay)
    assert (mail.type, mail.email_to, mail.email_from) == ("email", ("ops@acme.test",), "status@shop.test")
    assert (mail.secret_ref.name, mail.secret_ref.key) == ("smtp", "url")
    assert (hook.type, hook.url) == ("webhook", "http://hook")
    [only] = _receivers_for(consumer, IncidentPolicy())
    assert only.type == "webhook"


def test_who_is_told_follows_the_parsed_policy(service):
    incident = {"spec": {"products": [{"name": "payments", "versions": ["v1"]}]}, "status": {}}
    told = product({"receivers": [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/ops"}]})
    told["spec"]["consumers"] = [{"name": "acme", "contact": {"webhook": "http://127.0.0.1:9/acme"}}]
    # notifyConsumers left out: the model's default (true) tells the consumer; receivers are typed
    found = notify.recipients(incident, {"payments": told})
    assert [(r.name, r.kind) for r in found] == [("acme", "consumer"), ("ops", "receiver")]
    assert found[1].receiver is not None and found[1].receiver.url == "http://127.0.0.1:9/ops"
    quiet = {
        **told,
        "spec": {**told["spec"], "incidents": {**told["spec"]["incidents"], "notifyConsumers": False}},
    }
    assert [r.name for r in notify.recipients(incident, {"payments": quiet})] == ["ops"]
    # the service's reading: a policy the model refuses counts as the defaults (consumers told)
    refused = {**told, "spec": {**told["spec"], "incidents": {"notifyConsumers": False, "minSpacing": 5}}}
    assert [r.name for r in notify.recipients(incident, {"payments": refused}, service._policy)] == ["acme"]

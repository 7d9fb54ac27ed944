"""Validating admission webhook: what CEL cannot judge because it has no clock.

A MaintenanceWindow that starts sooner than its notice lead time (default 72 h) is refused
unless it is an emergency with a reason (``maintenance.notices.lead_time_violation`` decides).
Every replica serves it (it needs no leadership and no cache). Registered with
``failurePolicy: Ignore``: if no replica answers, the operator still refuses to open such a
window (it stays ``Stalled`` with the same message), so nothing goes around the rule.
"""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from . import durations
from .api.base import parse
from .api.maintenancewindow import MaintenanceWindowSpec
from .errors import InvalidSpec
from .maintenance.notices import lead_time_violation

log = logging.getLogger("pitwall.admission")
PATH = "/validate/maintenancewindows"


def judge(review: dict) -> dict:
    """AdmissionReview in, AdmissionReview out. Pure apart from the clock."""
    request = review.get("request") or {}
    message = None
    if (
        request.get("operation") in ("CREATE", "UPDATE")
        and (request.get("kind") or {}).get("kind") == "MaintenanceWindow"
    ):
        previous = None
        if request.get("operation") == "UPDATE":
            try:  # an old spec that does not parse: the new one is judged on its own
                previous = parse(MaintenanceWindowSpec, (request.get("oldObject") or {}).get("spec"))
            except InvalidSpec:
                previous = None
        try:
            spec = parse(MaintenanceWindowSpec, (request.get("object") or {}).get("spec"))
            message = lead_time_violation(spec, durations.now(), previous=previous)
        except InvalidSpec as exc:
            message = exc.message
    response: dict = {"uid": request.get("uid", ""), "allowed": message is None}
    if message:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": message}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


async def _validate(request: web.Request) -> web.Response:
    try:
        review = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected an AdmissionReview") from None
    answer = judge(review)
    if not answer["response"]["allowed"]:
        obj = (review.get("request") or {}).get("object") or {}
        log.info(
            "refused MaintenanceWindow %s: %s",
            (obj.get("metadata") or {}).get("name"),
            answer["response"]["status"]["message"],
        )
    return web.json_response(answer)


async def serve(host: str, port: int, certfile: str, keyfile: str) -> web.AppRunner:
    app = web.Application()
    app.router.add_post(PATH, _validate)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner

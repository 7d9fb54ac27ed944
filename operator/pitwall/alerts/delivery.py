"""Sending notifications: HTTP receivers over one shared httpx client, email over SMTP.

Each delivery retries with exponential backoff, within a bound on attempts and on total time
(a notification never blocks its rule for long: what is not delivered stays owed in the
records and a later evaluation tries again). 5xx, 408, 429 and connection errors are retried,
honouring ``Retry-After`` (capped); other 4xx are not, since repeating the same request cannot
fix it. Errors are reported masked: webhook URLs, keys and SMTP passwords are the credential
themselves, so they never appear in a result (which ends up in status and Events), in any
encoding (``masking``).

Every request obeys the operator's egress policy (``egress``): HTTP through the client the
caller passes (``egress.client``), SMTP through ``egress.open_socket``. A refused address is
recorded once and not retried. A receiver's answer body is never copied into a result: a
receiver URL pointed at an internal service would otherwise read that service back into the
tenant's status. At most ``ANSWER_LIMIT`` bytes of it are read (and dropped, so the connection
can be reused); the result says the status code and where.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

import aiosmtplib
import httpx

from .. import durations, egress
from ..masking import Masker
from . import payloads
from .rules import Receiver
from .state import RESOLVED, DeliveryResult, Notification

DEFAULT_OPSGENIE_URL = "https://api.opsgenie.com"
DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com"
RETRIED_STATUSES = (408, 429)
ANSWER_LIMIT = 4096  # bytes of a receiver's answer read (and dropped): never shown


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for one delivery; its requests (one per alert for Opsgenie/PagerDuty) share ``max_total``."""

    max_attempts: int = 8
    base_delay: float = 0.5  # doubles per attempt ...
    max_delay: float = 30.0  # ... up to this
    max_total: float = 120.0  # no new attempt would start after this many seconds
    retry_after_cap: float = 60.0  # a receiver asking for longer gets this
    timeout: float = 10.0  # per request

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    error: str | None = None
    retry: bool = False
    retry_after: float | None = None


class Announcement(Protocol):
    """A free-form message (a maintenance notice, a digest): what :func:`deliver_message` sends."""

    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def data(self) -> dict: ...


def _alert_mail(
    n: Notification, address: str, *, to: tuple[str, ...], message_id: str | None
) -> EmailMessage:
    return payloads.email(n, address, to, message_id)


async def deliver(
    n: Notification,
    secret_value: str | None,
    client: httpx.AsyncClient,
    *,
    policy: RetryPolicy = RetryPolicy(),
    external_url: str = "",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    addresses: egress.Policy = egress.Policy(),
    message_id: str | Callable[[Notification], str] | None = None,
) -> list[DeliveryResult]:
    """Send ``n`` to its receiver; one result per request (Opsgenie and PagerDuty: per alert).

    ``secret_value`` is what the receiver's ``secretRef`` points to: the webhook URL (Teams,
    Slack, webhook), the API key (Opsgenie), the routing key (PagerDuty) or the SMTP URL
    ``smtp[s]://[user:pass@]host[:port][?starttls=true]`` (email). A webhook receiver may
    instead carry a plain ``url`` in its spec. ``addresses`` is the egress policy SMTP obeys
    (HTTP obeys ``client``'s).
    """
    receiver = n.receiver
    sender = _Sender(receiver, n.event, client, policy, sleep, clock, secret_value, addresses)
    if receiver.type in ("msteams", "slack", "webhook"):
        build = {"msteams": payloads.teams, "slack": payloads.slack}.get(receiver.type)
        body = build(n) if build else payloads.alertmanager(n, external_url)
        return [await sender.webhook(body, n.keys)]
    if not secret_value:
        return [sender.unconfigured(n.keys, "the receiver's Secret holds no value")]
    if receiver.type == "email":
        # One mail per alert, each with its own Message-ID (``message_id`` maps a one-alert
        # notification to it): a group's id would change with the group, and a resend after a
        # crash, grouped differently, would be a second mail for the same event.
        mails = []
        for alert in n.alerts:
            single = Notification(n.rule, n.receiver, n.event, (alert,))
            mid = message_id(single) if callable(message_id) else message_id
            mails.append(
                await sender.smtp(
                    functools.partial(_alert_mail, single, to=receiver.email_to, message_id=mid), (alert.key,)
                )
            )
        return mails
    results = []
    for alert in n.alerts:
        if receiver.type == "opsgenie":
            base = (receiver.url or DEFAULT_OPSGENIE_URL).rstrip("/")
            headers = {"Authorization": f"GenieKey {secret_value}"}
            if n.event == RESOLVED:
                results.append(
                    await sender.http(
                        f"{base}/v2/alerts/{quote(alert.key, safe='')}/close",
                        payloads.opsgenie_close(n, alert),
                        (alert.key,),
                        headers=headers,
                        params={"identifierType": "alias"},
                    )
                )
            else:
                results.append(
                    await sender.http(
                        f"{base}/v2/alerts", payloads.opsgenie_create(n, alert), (alert.key,), headers=headers
                    )
                )
        else:
            base = (receiver.url or DEFAULT_PAGERDUTY_URL).rstrip("/")
            results.append(
                await sender.http(
                    f"{base}/v2/enqueue",
                    payloads.pagerduty(n, alert, secret_value, external_url),
                    (alert.key,),
                )
            )
    return results


async def deliver_message(
    receiver: Receiver,
    message: Announcement,
    secret_value: str | None,
    client: httpx.AsyncClient,
    *,
    event: str = "notice",
    policy: RetryPolicy = RetryPolicy(),
    message_id: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    addresses: egress.Policy = egress.Policy(),
) -> DeliveryResult:
    """Send a free-form message through a receiver, with the same retries and masking.

    Chat receivers get the subject and text, webhooks ``message.data`` as JSON, email all of
    it. Opsgenie and PagerDuty open incidents, which a notice is not: they are refused.
    """
    sender = _Sender(receiver, event, client, policy, sleep, clock, secret_value, addresses)
    if receiver.type == "msteams":
        return await sender.webhook(payloads.teams_message(message.subject, message.text), ())
    if receiver.type == "slack":
        return await sender.webhook(payloads.slack_message(message.subject, message.text), ())
    if receiver.type == "webhook":
        return await sender.webhook(message.data, ())
    if receiver.type != "email":
        return sender.unconfigured((), f"{receiver.type} receivers take alerts, not messages")
    if not secret_value:
        return sender.unconfigured((), "the receiver's Secret holds no value")
    return await sender.smtp(
        lambda address: payloads.email_message(
            message.subject, message.text, message.html, address, receiver.email_to, message_id
        ),
        (),
    )


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/***``: enough to tell receivers apart, not enough to post."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    hidden = "/***" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


class _Sender:
    """Retry loop and error masking shared by every request of one delivery."""

    def __init__(
        self,
        receiver: Receiver,
        event: str,
        client: httpx.AsyncClient,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        secret: str | None,
        addresses: egress.Policy,
    ):
        self.receiver, self.event, self.client, self.policy = receiver, event, client, policy
        self.sleep, self.clock, self.secret, self.addresses = sleep, clock, secret, addresses
        self.start = clock()
        self.mask = Masker(secret_parts(secret))

    def result(
        self, keys: tuple[str, ...], ok: bool, attempts: int, error: str | None, *, permanent: bool = False
    ) -> DeliveryResult:
        return DeliveryResult(
            self.receiver.name,
            self.event,
            keys,
            ok,
            attempts,
            self.scrub(error) if error else None,
            durations.now(),
            permanent,
        )

    def unconfigured(self, keys: tuple[str, ...], error: str) -> DeliveryResult:
        return self.result(keys, False, 0, error, permanent=True)

    def scrub(self, text: str) -> str:
        return self.mask(text)[:300]

    async def webhook(self, body: dict, keys: tuple[str, ...]) -> DeliveryResult:
        url = self.secret or (self.receiver.url if self.receiver.type == "webhook" else None)
        if not url:
            return self.unconfigured(keys, "no webhook URL in the receiver's Secret")
        return await self.http(url, body, keys)

    async def http(
        self,
        url: str,
        body: dict,
        keys: tuple[str, ...],
        *,
        headers: dict | None = None,
        params: dict | None = None,
    ) -> DeliveryResult:
        where = mask_url(url)

        async def once() -> _Outcome:
            try:
                async with self.client.stream(
                    "POST", url, json=body, headers=headers, params=params, timeout=self.policy.timeout
                ) as response:
                    await _drain(response)
            except egress.Denied as exc:
                return _Outcome(False, f"{where}: refused: {exc.message}")
            except httpx.InvalidURL:
                return _Outcome(False, f"invalid URL {where}")
            except httpx.HTTPError as exc:
                return _Outcome(False, f"{where}: {type(exc).__name__} {exc}".strip(), retry=True)
            if response.is_success:
                return _Outcome(True)
            status = response.status_code
            return _Outcome(
                False,
                f"HTTP {status}{_phrase(status)} from {where}",
                retry=status in RETRIED_STATUSES or status >= 500,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )

        return await self.retry(once, keys)

    async def smtp(self, compose: Callable[[str], EmailMessage], keys: tuple[str, ...]) -> DeliveryResult:
        """``compose(sender_address)`` builds the mail once the SMTP URL is known to be usable."""
        try:
            options = _smtp_options(self.secret or "")
        except ValueError as exc:
            return self.unconfigured(keys, str(exc))
        # No ``from``: relays usually accept their own login as sender, else pitwall@<relay>.
        username = options["username"] or ""
        try:
            message = compose(
                self.receiver.email_from
                or (username if "@" in username else f"pitwall@{options['hostname']}")
            )
        except Exception as exc:  # noqa: BLE001 - the same input fails the same way: record once, no retry
            return self.unconfigured(keys, f"could not compose the mail: {type(exc).__name__}: {exc}")
        where = f"SMTP {options['hostname']}:{options['port']}"

        async def once() -> _Outcome:
            try:
                # The socket is dialled to the address the egress policy judged; aiosmtplib
                # still verifies TLS against the host name.
                sock = await egress.open_socket(
                    self.addresses, options["hostname"], options["port"], self.policy.timeout
                )
            except egress.Denied as exc:
                return _Outcome(False, f"{where}: refused: {exc.message}")
            except OSError as exc:
                return _Outcome(False, f"{where}: {type(exc).__name__} {exc}".strip(), retry=True)
            try:
                await aiosmtplib.send(
                    message, timeout=self.policy.timeout, sock=sock, **{**options, "port": None}
                )
            except aiosmtplib.SMTPResponseException as exc:
                # 4xx is the server's "try again later"; 5xx (bad address, auth) will not change.
                return _Outcome(
                    False, f"{where}: {exc.code} {_short(exc.message)}", retry=400 <= exc.code < 500
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                codes = [r.code for r in exc.recipients]
                return _Outcome(
                    False,
                    f"{where}: recipients refused: {_short(str(exc))}",
                    retry=bool(codes) and all(400 <= c < 500 for c in codes),
                )
            except aiosmtplib.SMTPNotSupported as exc:
                return _Outcome(False, f"{where}: {exc}")
            except (aiosmtplib.SMTPException, OSError) as exc:
                return _Outcome(
                    False, f"{where}: {type(exc).__name__} {_short(str(exc))}".strip(), retry=True
                )
            finally:
                sock.close()
            return _Outcome(True)

        return await self.retry(once, keys)

    async def retry(self, once: Callable[[], Awaitable[_Outcome]], keys: tuple[str, ...]) -> DeliveryResult:
        attempt = 0
        while True:
            attempt += 1
            outcome = await once()
            if outcome.ok:
                return self.result(keys, True, attempt, None)
            if not outcome.retry:
                return self.result(keys, False, attempt, outcome.error, permanent=True)
            if attempt >= self.policy.max_attempts:
                return self.result(keys, False, attempt, outcome.error)
            if outcome.retry_after is not None:
                delay = min(outcome.retry_after, self.policy.retry_after_cap)
            else:
                delay = self.policy.backoff(attempt)
            if self.clock() - self.start + delay > self.policy.max_total:
                return self.result(keys, False, attempt, f"{outcome.error} (gave up: retry budget spent)")
            await self.sleep(delay)


async def _drain(response: httpx.Response) -> None:
    """Read at most ``ANSWER_LIMIT`` raw bytes of the answer and drop them: a small answer
    leaves the connection reusable, a large (or endless) one is cut."""
    if response.is_stream_consumed:  # already in memory (a mock transport's answer)
        return
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size >= ANSWER_LIMIT:
            break


def _phrase(status: int) -> str:
    """The standard reason phrase (never the server's own, which is free text)."""
    try:
        return " " + HTTPStatus(status).phrase
    except ValueError:
        return ""


def _short(text: str) -> str:
    """A server's free-text reply (SMTP), cut short and on one line."""
    return " ".join(text.split())[:120]


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - durations.now()).total_seconds())


def _smtp_options(smtp_url: str) -> dict:
    """aiosmtplib keyword arguments from ``smtp[s]://[user:pass@]host[:port][?starttls=true]``."""
    parts = urlsplit(smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("the SMTP URL must look like smtp://[user:pass@]host:port or smtps://...")
    implicit = parts.scheme == "smtps"
    starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in ("true", "1", "yes")
    return {
        "hostname": parts.hostname,
        "port": parts.port or (465 if implicit else 25),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "use_tls": implicit,
        "start_tls": starttls and not implicit,
    }


def secret_parts(secret: str | None) -> list[str]:
    """The secret and the pieces of it that may show up alone in an error (URL path, password)."""
    if not secret:
        return []
    parts = [secret]
    try:
        url = urlsplit(secret)
        parts += [url.path, url.query, url.password or "", unquote(url.password or "")]
    except ValueError:
        pass
    return sorted({p for p in parts if len(p) >= 4}, key=len, reverse=True)

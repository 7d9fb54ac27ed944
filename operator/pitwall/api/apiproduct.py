"""ApiProduct: an API product, its versions, the backends it calls and the consumers it serves."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from .base import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    DURATION_LEN,
    ENV_NAME,
    LABEL_LEN,
    LONG_TEXT,
    NAME_LEN,
    QUANTITY,
    SHORT_TEXT,
    TEXT,
    URL_LEN,
    Model,
    cel,
    duration,
    flag,
    integer,
    items,
    mapping,
    object_name,
    rule,
    section,
    text,
    timestamp,
    unique_by,
)
from .maintenancewindow import ConsumerEmail
from .receivers import Receiver
from .resource import AGE, READY, Column, Names, Resource
from .shared import Contact, Owner, Status, StringMap

Lifecycle = Literal["published", "deprecated", "retired"]
LIFECYCLES: tuple[str, ...] = get_args(Lifecycle)
Criticality = Literal["critical", "degradable", "optional"]
CRITICALITIES: tuple[str, ...] = get_args(Criticality)
Environment = Literal["live", "sandbox"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
ProductState = Literal["Available", "Degraded", "Unavailable", "Maintenance", "Progressing", "Stalled"]
PRODUCT_STATES: tuple[str, ...] = get_args(ProductState)

Quantity = Annotated[int | str, Field(json_schema_extra={"pattern": QUANTITY})]
Quantities = dict[str, Quantity]
VersionName = Annotated[str, Field(max_length=LABEL_LEN, pattern=DNS_LABEL, description="A version name.")]
Revision = int | str  # a Deployment revision: the API server hands it back as text


class EnvVar(Model):
    """An environment variable for the version's containers."""

    model_config = {
        "json_schema_extra": cel(
            rule("!(has(self.value) && has(self.valueFrom))", "set at most one of env value and valueFrom")
        )
    }

    name: str = text("Variable name.", SHORT_TEXT, default=..., min_length=1, pattern=ENV_NAME)
    value: str | None = text("Literal value.", 32768)
    value_from: dict[str, Any] | None = Field(
        None,
        description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef ...), passed "
        "through as written.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Resources(Model):
    """Compute resources of the API container."""

    requests: Quantities | None = Field(
        None, description="Requested resources, e.g. cpu: 100m, memory: 128Mi.", max_length=16
    )
    limits: Quantities | None = Field(None, description="Resource limits, e.g. memory: 256Mi.", max_length=16)


class Version(Model):
    """A version of the product; versions run side by side."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "!has(self.sunsetAt) || self.lifecycle == 'deprecated'",
                "sunsetAt is only allowed when lifecycle is deprecated",
                field_path=".sunsetAt",
            )
        )
    }

    name: str = text(
        "Version name, e.g. v2. Names the Deployment and Service <product>-<name>.",
        LABEL_LEN,
        default=...,
        min_length=1,
        pattern=DNS_LABEL,
    )
    lifecycle: Lifecycle = Field(
        "published",
        description="published runs normally; deprecated keeps running "
        "and announces sunsetAt; retired is scaled down and removed.",
    )
    sunset_at: str | None = timestamp("When a deprecated version goes away (only with lifecycle deprecated).")
    image: str = text(
        "Container image, e.g. registry.example.com/payments:2.3.0.",
        512,
        default=...,
        min_length=1,
        pattern=r"^\S+$",
    )
    replicas: int = integer(
        "Desired replicas; edit it at runtime and the cluster follows.", default=1, minimum=0, maximum=100
    )
    port: int = integer("Container port the API listens on.", default=8080, minimum=1, maximum=65535)
    health_path: str = text(
        "HTTP path for the pods' readiness and liveness probes.", default="/isUp", pattern=r"^/"
    )
    env: list[EnvVar] | None = items("Environment variables.", 64)
    resources: Resources | None = None
    pod_annotations: StringMap | None = mapping("Extra annotations on the version's pods.")


class Consumer(Model):
    """A third party subscribed to the product."""

    name: str = text("Consumer name.", NAME_LEN, default=..., min_length=1, pattern=DNS_SUBDOMAIN)
    versions: list[VersionName] | None = items(
        "Versions it uses (names from spec.versions).", 20, list_type="set"
    )
    contact: Contact | None = Field(
        None, description="Where notices (maintenance, deprecation, incidents) go."
    )
    incident_notices: bool = flag(
        "Tell this consumer about incidents of the versions it uses (false: opt out; "
        "maintenance notices still go).",
        True,
    )


class BackendDependency(Model):
    """A dependency on a Backend."""

    name: str = object_name("Name of a Backend in this namespace.", ...)
    criticality: Criticality = Field(
        "critical",
        description="critical: the product is unavailable without it; "
        "degradable: it degrades; optional: shown, changes nothing.",
    )


class SecretName(Model):
    """A Secret reference."""

    name: str = object_name("Secret name.", ...)


class MaintenancePage(Model):
    """What the maintenance page says during a MaintenanceWindow."""

    title: str | None = text('Page title (default: "<displayName or name> is down for maintenance").', 200)
    message: str | None = text(
        'Text shown to API clients and browsers (default: "This API is undergoing planned '
        'maintenance. Please try again later.").',
        LONG_TEXT,
    )
    retry_after: str = duration(
        "Sent as Retry-After, shortened to the time left when the window ends sooner.", "30m"
    )


class TrafficAnalysis(Model):
    """Judge a rollout by the real traffic of its version (spec.traffic) within rollout.analysisWindow."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "has(self.maxErrorRatio) || has(self.maxLatencyMs)",
                "name maxErrorRatio, maxLatencyMs or both",
            )
        )
    }

    max_error_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Roll back when server errors plus timeouts pass this share of the version's requests.",
    )
    max_latency_ms: float | None = Field(None, ge=0, description="Roll back when the quantile passes this.")
    quantile: Literal["p50", "p95", "p99"] = Field("p99", description="The latency quantile judged.")
    min_rps: float = Field(0.1, ge=0, description="Below this request rate the version has no data to judge.")
    no_data: Literal["wait", "pass", "fail"] = Field(
        "wait",
        description="Without data (Prometheus silent, or under minRps): wait (judge once data comes; "
        "the rollout stands if none comes within the window), pass (count as healthy now), or fail (roll back "
        "once spec.traffic.window has passed since the rollout without data).",
    )


class Analysis(Model):
    """What a rollout is judged by, besides its probes."""

    traffic: TrafficAnalysis | None = Field(None, description=TrafficAnalysis.__doc__)


class Rollout(Model):
    """How new images are rolled out and rolled back."""

    auto_rollback: bool = flag("Roll back to the last good image when a rollout fails.", True)
    progress_deadline: str = duration("A rollout not available within this is a failure.", "2m")
    analysis_window: str = duration(
        "After a rollout, probes of the version going Down within this window count as a failed rollout.",
        "5m",
    )
    analysis: Analysis | None = Field(None, description=Analysis.__doc__)


LeadTime = Annotated[str, duration("A lead time before sunsetAt.", ...)]


class SunsetNotice(Model):
    """Notices to the consumers of a deprecated version: one when it is deprecated, then a reminder per lead time before its sunsetAt (each once; what was sent is in status.sunsetNotices)."""  # noqa: E501

    lead_times: list[LeadTime] = items(
        "Remind consumers this long before sunsetAt, each once (only the "
        "shortest lead time already reached is sent, never a stale one); [] sends none.",
        5,
        default=["30d", "7d"],
    )
    consumer_email: ConsumerEmail | None = Field(
        None,
        description="How to email consumers (their "
        "contact.email); consumers with a contact.webhook get JSON.",
    )


PROM_LABEL = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
PROM_METRIC = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
PromLabel = Annotated[
    str, Field(max_length=LABEL_LEN, pattern=PROM_LABEL, description="A Prometheus label name.")
]
StatusCode = Annotated[str, Field(max_length=8, pattern=r"^[0-9]{3}$", description="An HTTP status code.")]


# What common exporters publish, by spec.traffic.preset: metric names, label names, the duration
# unit and fixed matches. A field set in spec.traffic wins over its preset's value.
TRAFFIC_PRESETS: dict[str, dict[str, Any]] = {
    # pitwall.traffic.exporter, the demo API: http_requests_total{product, version, consumer, route, code}
    "pitwall": {
        "requestsMetric": "http_requests_total",
        "durationMetric": "http_request_duration_seconds",
        "labels": {
            "product": "product",
            "version": "version",
            "consumer": "consumer",
            "route": "route",
            "status": "code",
        },
    },
    # Spring Boot Actuator + Micrometer: http_server_requests_seconds{application, uri, status}
    # (a histogram with percentiles-histogram enabled; version and consumer as extra tags).
    "spring-boot": {
        "requestsMetric": "http_server_requests_seconds_count",
        "durationMetric": "http_server_requests_seconds",
        "labels": {
            "product": "application",
            "version": "version",
            "consumer": "consumer",
            "route": "uri",
            "status": "status",
        },
    },
    # ingress-nginx: nginx_ingress_controller_requests{ingress, service, path, status}; the
    # version is read from the backend Service Pitwall names <product>-<version>.
    "ingress-nginx": {
        "requestsMetric": "nginx_ingress_controller_requests",
        "durationMetric": "nginx_ingress_controller_request_duration_seconds",
        "labels": {
            "product": "ingress",
            "version": "service",
            "consumer": "consumer",
            "route": "path",
            "status": "status",
        },
        "versionFromService": True,
    },
    # Istio: istio_requests_total as the serving proxy reports it, durations in milliseconds,
    # the calling workload as the consumer.
    "istio": {
        "requestsMetric": "istio_requests_total",
        "durationMetric": "istio_request_duration_milliseconds",
        "durationUnit": "milliseconds",
        "labels": {
            "product": "destination_canonical_service",
            "version": "destination_canonical_revision",
            "consumer": "source_workload",
            "route": "route",
            "status": "response_code",
        },
        "matchLabels": {"reporter": "destination"},
    },
}
TrafficPreset = Literal["pitwall", "spring-boot", "ingress-nginx", "istio"]


class TrafficLabels(Model):
    """The Prometheus label names that carry each dimension of a request (default: the preset's)."""

    product: str | None = text(
        "Label holding the product (its value: productValue).", LABEL_LEN, pattern=PROM_LABEL
    )
    version: str | None = text("Label holding the version name.", LABEL_LEN, pattern=PROM_LABEL)
    consumer: str | None = text("Label holding the calling consumer.", LABEL_LEN, pattern=PROM_LABEL)
    route: str | None = text(
        "Label holding the route template (e.g. /orders/{id}, never a raw path).",
        LABEL_LEN,
        pattern=PROM_LABEL,
    )
    status: str | None = text("Label holding the HTTP status code.", LABEL_LEN, pattern=PROM_LABEL)


class Traffic(Model):
    """Where the product's real traffic is found in Prometheus (the operator's --prometheus-url).

    A preset names the metrics and labels of a common exporter: pitwall (the default:
    http_requests_total and the histogram http_request_duration_seconds, labelled product,
    version, consumer, route and code), spring-boot (Micrometer's http_server_requests_seconds),
    ingress-nginx (nginx_ingress_controller_requests) or istio (istio_requests_total); any
    metric or label set here overrides the preset's.
    """

    preset: TrafficPreset = Field(
        "pitwall",
        description="The exporter whose metric and label names are the defaults: pitwall, spring-boot, "
        "ingress-nginx or istio.",
    )
    requests_metric: str | None = text(
        "Counter of requests (default: the preset's).", 200, pattern=PROM_METRIC
    )
    duration_metric: str | None = text(
        "Histogram of request durations (its _bucket series are read; default: the preset's).",
        200,
        pattern=PROM_METRIC,
    )
    labels: TrafficLabels = section(TrafficLabels.__doc__, default_empty=True, factory=TrafficLabels)
    product_value: str | None = text(
        "Value of the product label (default: the ApiProduct's name).",
        LABEL_LEN,
        pattern=r"^[-A-Za-z0-9_.:]+$",
    )
    match_labels: StringMap | None = mapping(
        "Extra exact label matches on every series, e.g. namespace: shop (with the preset's own, "
        "e.g. istio's reporter: destination).",
        8,
    )
    window: str = duration(
        "Rate window of every figure (PromQL [window]); at least two scrape intervals.", "5m"
    )
    timeout_codes: list[StatusCode] = items(
        "Status codes counted as timeouts, not client or server errors.", 8, default=["408", "504"]
    )
    top: int = integer("How many consumers and routes to show per version.", default=5, minimum=1, maximum=20)
    degraded_error_ratio: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Server errors plus timeouts at or above "
        "this share of requests mark a version's traffic as erroring (status "
        "is written at once when this changes, else at most once a minute).",
    )


class IncidentPolicy(Model):
    """How incidents of this product are opened, closed and told (the product must be public)."""

    open: bool = flag(
        "Open an Incident when a version becomes degraded or goes down, resolve it on recovery.", True
    )
    merge_window: str = duration(
        "The incident resolves once the product has stayed operational this long; a "
        "relapse within it continues the same incident (flapping opens no new one).",
        "5m",
    )
    min_spacing: str = duration(
        "At least this long between two update notices of one incident to a "
        "consumer (a later update waits; start and resolution notices always go).",
        "10m",
    )
    notify_consumers: bool = flag(
        "Tell the consumers of the affected versions (their contact) when an incident "
        "starts, on each update and when it is resolved.",
        True,
    )
    consumer_email: ConsumerEmail | None = None
    receivers: list[Receiver] | None = items(
        "Internal receivers that get the same stream (same shape as AlertRule receivers).",
        10,
        rules=[unique_by("name", "incident receiver names")],
    )


class ApiProductSpec(Model):
    """The desired state of the API product."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "!has(self.consumers) || self.consumers.all(c, !has(c.versions) || "
                "c.versions.all(v, self.versions.exists(x, x.name == v)))",
                "consumers[].versions must name versions listed in spec.versions",
                field_path=".consumers",
            )
        )
    }

    display_name: str | None = text("Human name, e.g. Payments API.", 128)
    description: str | None = text("What the product does.", 2048)
    owner: Owner | None = None
    environment: Environment = Field("live", description="live or sandbox.")
    public: bool = flag("Show this product on the public status page.", False)
    image_pull_secrets: list[SecretName] | None = items("Secrets to pull the versions' images with.", 8)
    # A map keyed by name (not an atomic list): a runtime `kubectl patch` of one version's
    # replicas owns just that field, so a GitOps apply of the rest does not conflict. The API
    # server refuses duplicate names itself, naming the version (server-side apply: "duplicate
    # entries for key [name=\"v1\"]"; a plain create: "Duplicate value").
    versions: list[Version] = items(
        "The versions that run, side by side (1 to 20, unique names).",
        20,
        default=...,
        min_items=1,
        list_type="map",
        map_keys=["name"],
    )
    backends: list[BackendDependency] | None = items(
        "Backends (provider systems) this product calls.", 50, rules=[unique_by("name", "backend names")]
    )
    consumers: list[Consumer] | None = items(
        "Third parties subscribed to this product.", 200, rules=[unique_by("name", "consumer names")]
    )
    maintenance_page: MaintenancePage = section(
        MaintenancePage.__doc__, default_empty=True, factory=MaintenancePage
    )
    rollout: Rollout = section(Rollout.__doc__, default_empty=True, factory=Rollout)
    sunset_notice: SunsetNotice | None = Field(None, description=SunsetNotice.__doc__)
    traffic: Traffic | None = Field(None, description=Traffic.__doc__)
    incidents: IncidentPolicy = section(IncidentPolicy.__doc__, default_empty=True, factory=IncidentPolicy)


# ------------------------------------------------------------------ status


class VersionStatus(Model):
    """A version as running."""

    name: str | None = text("Version name.", LABEL_LEN)
    lifecycle: str | None = text("Lifecycle.", 32)
    image: str | None = text("Image running now.", 512)
    replicas: int | None = integer("Desired replicas.", minimum=0)
    ready_replicas: int | None = integer("Ready replicas.", minimum=0)
    url: str | None = text("In-cluster URL of the version's Service.", URL_LEN)
    revision: Revision | None = Field(None, description="Deployment revision.")
    last_good_image: str | None = text("The last image that became available.", 512)
    previous_good_image: str | None = text(
        "The good image before lastGoodImage (what a rollout whose probes "
        "fail within rollout.analysisWindow returns to).",
        512,
    )
    sunset_at: str | None = timestamp("Sunset of a deprecated version.")
    state: str | None = text("Version state.", 64)
    analysis: str | None = text(
        "The traffic analysis of the running rollout: waiting, passed or failed, and why.", TEXT
    )


class BackendStatus(Model):
    """A dependency."""

    name: str | None = text("Backend name.", NAME_LEN)
    criticality: str | None = text("Criticality.", 32)
    state: str | None = text("The Backend's state (or Missing).", 64)
    effect: str | None = text("Effect on this product.", 64)


class RolloutRecord(Model):
    """A rollout."""

    revision: Revision | None = Field(None, description="Deployment revision.")
    version: str | None = text("Version name.", LABEL_LEN)
    image: str | None = text("Image rolled out.", 512)
    at: str | None = timestamp("When.")
    result: str | None = text("Outcome: progressing, succeeded, failed, rolled-back or retired.", 64)
    message: str | None = text("Detail.", TEXT)


class Rollback(Model):
    """A rollback."""

    version: str | None = text("Version rolled back.", LABEL_LEN)
    failed_image: str | None = text("The image that failed.", 512)
    restored_image: str | None = text("The image restored.", 512)
    at: str | None = timestamp("When.")


class SunsetNoticeRecord(Model):
    """A sunset notice: recorded owed (pending) before it is sent, never decided twice."""

    version: str | None = text("The deprecated version.", LABEL_LEN)
    kind: str | None = text("deprecated, or reminder (with leadTime).", 32)
    lead_time: str | None = text("The lead time of a reminder.", DURATION_LEN)
    sunset_at: str | None = timestamp("The sunsetAt the notice announced.")
    at: str | None = timestamp("When it was decided (recorded before it was sent).")
    delivered: bool | None = Field(None, description="Every recipient accepted it.")
    recipients: list[Annotated[str, Field(max_length=NAME_LEN, description="A consumer.")]] | None = items(
        "Consumers it reached.", 200
    )
    pending: list[Annotated[str, Field(max_length=NAME_LEN, description="A consumer.")]] | None = items(
        "Consumers still owed it (the outbox sends it, also after a restart).", 200
    )
    failed: list[Annotated[str, Field(max_length=NAME_LEN, description="A consumer.")]] | None = items(
        "Consumers it could not reach (refused for good, or after every try).", 200
    )
    tries: int | None = Field(None, ge=0, description="Tries that failed for a reason a retry may fix.")
    due: str | None = timestamp("When the next try is due (after a failure).")
    error: str | None = text("Why some recipients did not get it.", TEXT)


class TrafficShare(Model):
    """A consumer or route of a version with its share of the traffic."""

    name: str | None = text("Consumer name or route template.", SHORT_TEXT)
    rps: float | None = Field(None, description="Requests per second (absent when only errors are known).")
    errors_per_second: float | None = Field(None, description="Server errors and timeouts per second.")


class VersionTraffic(Model):
    """One version's traffic over the window."""

    name: str | None = text("Version name (the version label's value).", LABEL_LEN)
    rps: float | None = Field(None, description="Requests per second.")
    week_ago_rps: float | None = Field(None, description="Requests per second at the same time a week ago.")
    error_ratio: float | None = Field(None, description="Server errors plus timeouts per request (0..1).")
    client_error_ratio: float | None = Field(None, description="4xx (but timeouts) per request.")
    server_error_ratio: float | None = Field(None, description="5xx (but timeouts) per request.")
    timeout_ratio: float | None = Field(None, description="Timeouts (timeoutCodes) per request.")
    p50_ms: float | None = Field(None, description="Median latency in milliseconds.")
    p95_ms: float | None = Field(None, description="95th percentile latency in milliseconds.")
    p99_ms: float | None = Field(None, description="99th percentile latency in milliseconds.")
    top_consumers: list[TrafficShare] | None = items(
        "Consumers with the most requests, then the most errors.", 40
    )
    top_routes: list[TrafficShare] | None = items(
        "Route templates with the most requests, then the most errors.", 40
    )


class ProductTraffic(Model):
    """Real traffic from Prometheus, written at most once a minute unless a version starts or stops erroring."""

    at: str | None = timestamp("When Prometheus was asked.")
    window: str | None = text("The rate window.", DURATION_LEN)
    state: str | None = text("ok, erroring, idle (no requests) or unknown (Prometheus did not answer).", 16)
    message: str | None = text("Why the figures are unknown (Prometheus' error).", TEXT)
    versions: list[VersionTraffic] | None = items("Per version.", 40)


class ApiProductStatus(Status):
    """What the operator observed."""

    state: ProductState | None = Field(None, description="Overall state.")
    ready_versions: str | None = text("Ready versions out of non-retired versions, e.g. 2/2.", 16)
    versions: list[VersionStatus] | None = items("Per-version state.", 40)
    backends: list[BackendStatus] | None = items(
        "The backends this product depends on, with their state.", 50
    )
    history: list[RolloutRecord] | None = items("The last 20 rollouts.", 20)
    rolled_back: list[Rollback] | None = items(
        "Automatic rollbacks in force, one per version; a later change of that version's image clears it.", 20
    )
    sunset_notices: list[SunsetNoticeRecord] | None = items("Sunset notices sent (the last 50).", 50)
    traffic: ProductTraffic | None = None


class ApiProduct(Resource):
    """An API product: its versions, the backends it calls and the consumers it serves."""

    model_config = {
        "json_schema_extra": cel(
            rule(
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "an ApiProduct name must start with a letter and contain only lowercase letters, digits and '-' "
                "(it names Services)",
            ),
            rule(
                "self.spec.versions.all(v, size(self.metadata.name) + size(v.name) <= 62)",
                "the product name, '-' and each version name must fit in 63 characters (they name the version's "
                "Deployment and Service)",
                field_path=".spec.versions",
            ),
        )
    }
    names = Names(
        "apiproducts",
        ("pwap",),
        (
            READY,
            Column("State", ".status.state", description="Overall state."),
            Column("Versions", ".status.readyVersions", description="Ready versions / non-retired versions."),
            Column("Env", ".spec.environment", description="live or sandbox."),
            Column("Public", ".spec.public", "boolean", "Shown on the public status page.", priority=1),
            AGE,
        ),
    )

    spec: ApiProductSpec
    status: ApiProductStatus | None = None

"""Optional Codat webhook receiver: signed ``read.completed`` events trigger an immediate poll.

``build_webhook_receiver`` turns the ``webhooks`` config section into a
``WebhookReceiver``; the app mounts its ``route`` on the exporter's HTTP server
and starts/stops it alongside the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.config.schema import WebhookSettings
from exporter.http.webconfig import WebConfig
from exporter.webhooks.receiver import PollScheduler, WebhookReceiver, WebhookTelemetry
from exporter.webhooks.verify import SecretError, SigningSecret

__all__ = ["WebhookReceiver", "build_webhook_receiver", "webhooks_enabled"]


def webhooks_enabled(settings: WebhookSettings) -> bool:
    """True when the receiver should run (config ``enabled``, which ``CODAT_WEBHOOK_SECRET`` also sets)."""
    return settings.enabled and settings.secret is not None


def build_webhook_receiver(
    settings: WebhookSettings,
    scheduler: PollScheduler,
    telemetry: WebhookTelemetry,
    owns: Callable[[str], bool],
    web: WebConfig | None = None,
) -> WebhookReceiver:
    """The receiver described by ``settings``; ``owns(company_id)`` says whether this shard polls a company.

    ``web`` (TLS, basic auth) applies to the receiver's own port, if it has one.
    Raises ``exporter.webhooks.verify.SecretError`` if no usable secret is configured, and
    ``OSError`` if ``webhooks.listen_address`` cannot be bound.
    """
    if settings.secret is None:
        raise SecretError("webhooks need a signing secret: set CODAT_WEBHOOK_SECRET or webhooks.secret_file")
    secret = SigningSecret.parse(settings.secret.get_secret_value())
    return WebhookReceiver(
        secret,
        scheduler,
        telemetry,
        owns,
        path=settings.path,
        listen_address=settings.listen_address,
        max_body_bytes=settings.max_body_bytes,
        tolerance=settings.tolerance,
        web=web,
    )

"""The channels: email by SMTP (STARTTLS, login) or SES, a Slack/Teams-compatible webhook, SNS, the outbox.

`deliver` sends an alert through a team's channels. Each send is retried with back-off; an alert that still
cannot be sent is logged whole (its full text) and `deliver` returns: a failing channel never raises into
the caller. Nothing logged names a secret: no webhook URL, no password, and of an error only its kind
(a library's error text may quote the URL it called).
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from fe_platform.lib.alerts.model import Alert
from fe_platform.lib.alerts.outbox import write_outbox
from fe_platform.lib.alerts.routing import OUTBOX, TeamChannels, recipients

log = logging.getLogger("fe_platform.alerts")


def pause(seconds: float) -> None:
    """The wait between attempts."""
    time.sleep(seconds)


class ChannelError(Exception):
    """A send failed. `transient`: worth another try (a server error, a refused or broken connection)."""

    def __init__(self, what: str, transient: bool = True):
        super().__init__(what)
        self.transient = transient


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None  # default: the system's trusted CAs, host name checked


@dataclass(frozen=True)
class Transports:
    """How each channel reaches the outside world."""

    outbox: Path
    email: str = "outbox"  # outbox | smtp | ses
    smtp: SmtpServer | None = None
    email_from: str = "fe-platform@localhost"
    aws_region: str | None = None
    aws_endpoint_url: str | None = None  # tests point SES and SNS at a moto server
    attempts: int = 3
    backoff_seconds: float = 1.0
    timeout: float = 10.0
    sleep: Callable[[float], None] | None = None  # default: pause


@dataclass(frozen=True)
class Sent:
    """The outcome of one alert on one channel."""

    alert: Alert
    channel: str  # email | chat | sns
    via: str  # smtp | ses | webhook | sns | outbox
    ok: bool
    attempts: int
    error: str | None = None


def _email_message(alert: Alert, sender: str, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = alert.subject
    msg["Date"] = formatdate(alert.created_at.timestamp(), usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    msg["X-FE-Alert-Kind"] = alert.kind
    msg["X-FE-Alert-Severity"] = alert.severity
    msg.set_content(alert.body)
    return msg


def send_smtp(server: SmtpServer, alert: Alert, to: list[str]) -> None:
    try:
        with smtplib.SMTP(server.host, server.port, timeout=server.timeout) as smtp:
            if server.starttls:
                smtp.starttls(context=server.ssl_context or ssl.create_default_context())
            if server.user:
                smtp.login(server.user, server.password or "")
            smtp.send_message(_email_message(alert, server.sender, to))
    except smtplib.SMTPAuthenticationError as exc:
        raise ChannelError(f"SMTP login refused ({exc.smtp_code})", transient=False) from None
    except smtplib.SMTPRecipientsRefused:
        raise ChannelError("SMTP server refused every recipient", transient=False) from None
    except smtplib.SMTPResponseException as exc:
        raise ChannelError(f"SMTP error {exc.smtp_code}", transient=exc.smtp_code >= 400) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ChannelError(f"SMTP {type(exc).__name__}") from None


def _aws_client(service: str, transports: Transports):
    import boto3

    return boto3.client(service, region_name=transports.aws_region, endpoint_url=transports.aws_endpoint_url)


def _aws_error(service: str, exc: Exception) -> ChannelError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "error")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return ChannelError(f"{service} {code}", transient=status >= 500 or code == "Throttling")
    return ChannelError(f"{service} {type(exc).__name__}")


def send_ses(transports: Transports, alert: Alert, to: list[str]) -> None:
    try:
        _aws_client("ses", transports).send_email(
            Source=transports.email_from, Destination={"ToAddresses": to},
            Message={"Subject": {"Data": alert.subject, "Charset": "UTF-8"},
                     "Body": {"Text": {"Data": alert.body, "Charset": "UTF-8"}}})
    except Exception as exc:  # boto3's errors, network errors: all a failed send
        raise _aws_error("SES", exc) from None


def webhook_payload(alert: Alert) -> dict:
    """Slack and Teams incoming webhooks both show `text`; the alert's fields ride along for other receivers."""
    return {"text": f"*{alert.subject}*\n{alert.text}" + (f"\n<{alert.link}>" if alert.link else ""),
            "alert": alert.as_dict()}


def post_webhook(url: str, alert: Alert, timeout: float = 10.0) -> None:
    import requests

    try:
        response = requests.post(url, data=json.dumps(webhook_payload(alert)), timeout=timeout,
                                 headers={"Content-Type": "application/json"})
    except requests.RequestException as exc:
        raise ChannelError(f"webhook {type(exc).__name__}") from None
    if response.status_code >= 300:
        status = response.status_code
        raise ChannelError(f"webhook answered HTTP {status}", transient=status >= 500 or status == 429)


def publish_sns(transports: Transports, topic_arn: str, alert: Alert) -> None:
    attributes = {name: {"DataType": "String", "StringValue": value}
                  for name, value in (("kind", alert.kind), ("severity", alert.severity), ("team", alert.team),
                                      ("asset", alert.asset or "")) if value}
    try:
        _aws_client("sns", transports).publish(
            TopicArn=topic_arn, Subject=_sns_subject(alert.subject), Message=alert.body,
            MessageAttributes=attributes)
    except Exception as exc:
        raise _aws_error("SNS", exc) from None


def _sns_subject(subject: str) -> str:
    """SNS subjects: printable ASCII, at most 100 characters."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in subject)
    return text if len(text) <= 100 else text[:97] + "..."


def _with_retries(send: Callable[[], None], transports: Transports) -> tuple[int, str | None]:
    """(attempts made, the last error or None). Waits backoff, 2 x backoff, ... between attempts."""
    for attempt in range(1, transports.attempts + 1):
        try:
            send()
            return attempt, None
        except ChannelError as exc:
            if not exc.transient or attempt == transports.attempts:
                return attempt, str(exc)
            (pause if transports.sleep is None else transports.sleep)(transports.backoff_seconds * 2 ** (attempt - 1))
        except Exception as exc:  # a bug in a channel must not lose the alert either
            return attempt, f"{type(exc).__name__}"
    return transports.attempts, "no attempt made"


def _plan(alert: Alert, channels: TeamChannels, transports: Transports) -> list[tuple[str, str, Callable[[], None]]]:
    """(channel, via, send) for each channel the team has."""
    plan = []
    if channels.email:
        to = recipients(channels, alert)
        if transports.email == "smtp" and transports.smtp:
            plan.append(("email", "smtp", lambda: _needs(to) or send_smtp(transports.smtp, alert, to)))
        elif transports.email == "ses":
            plan.append(("email", "ses", lambda: _needs(to) or send_ses(transports, alert, to)))
        else:
            plan.append(("email", "outbox", lambda: write_outbox(transports.outbox, "email", alert, to)))
    if channels.webhook == OUTBOX:
        plan.append(("chat", "outbox", lambda: write_outbox(transports.outbox, "chat", alert)))
    elif channels.webhook:
        url = channels.webhook
        plan.append(("chat", "webhook", lambda: post_webhook(url, alert, transports.timeout)))
    if channels.sns_topic == OUTBOX:
        plan.append(("sns", "outbox", lambda: write_outbox(transports.outbox, "sns", alert)))
    elif channels.sns_topic:
        topic = channels.sns_topic
        plan.append(("sns", "sns", lambda: publish_sns(transports, topic, alert)))
    return plan


def _needs(to: list[str]) -> None:
    if not to:
        raise ChannelError("no email address to send to: the asset names no owner email", transient=False)


def deliver(alert: Alert, channels: TeamChannels, transports: Transports) -> list[Sent]:
    """Send one alert through every channel of its team. Never raises; a channel that fails is logged."""
    outcomes = []
    for channel, via, send in _plan(alert, channels, transports):
        attempts, error = _with_retries(send, transports)
        outcomes.append(Sent(alert, channel, via, error is None, attempts, error))
        if error:
            log.error("alert not sent by %s (%s) after %d attempt(s): %s; the alert: %s", channel, via, attempts,
                      error, json.dumps(alert.as_dict(), sort_keys=True))
    return outcomes

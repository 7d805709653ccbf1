"""Email through SMTP (aiosmtplib), with a Message-ID stable per delivery so that a retried send
is recognisable as the same message."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol

import aiosmtplib

from offerd.common import templating
from offerd.notifications import render
from offerd.notifications.channels import Outcome, delivery_url
from offerd.settings import Settings

if TYPE_CHECKING:
    from offerd.edge.deps import Services


class MailerNotConfigured(Exception):
    pass


class Mailer(Protocol):
    sender: str

    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sender = settings.smtp_from

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        if not s.smtp_host:
            raise MailerNotConfigured("SMTP is not configured: set OFFERD_SMTP_HOST")
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_tls == "ssl",
            start_tls=s.smtp_tls == "starttls",
            tls_context=ssl.create_default_context() if s.smtp_tls != "none" else None,
            timeout=30,
        )


def notification_email(delivery: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """A notification's email, rendered from its event (Jinja2 text and HTML templates)."""
    context = render.email_context(
        delivery["payload"], delivery_url=delivery_url(base_url, delivery)
    )
    config = delivery.get("channel_config") or {}
    return {
        "to": config.get("to", []),
        "subject": f"{context['title']}: {context['offer_title']}"[:200],
        "text": templating.render("offerd.notifications", "notification_email.txt", **context),
        "html": templating.render("offerd.notifications", "notification_email.html", **context),
    }


def build_message(
    delivery: Mapping[str, Any], sender: str, payload: Mapping[str, Any]
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(payload["to"])
    message["Subject"] = " ".join(str(payload["subject"]).split())
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "offerd.invalid"
    message["Message-ID"] = f"<{delivery['id']}@{domain}>"
    message.set_content(payload["text"])
    if payload.get("html"):
        message.add_alternative(payload["html"], subtype="html")
    return message


class EmailChannel:
    name = "email"

    async def deliver(self, delivery: Mapping[str, Any], services: Services) -> Outcome:
        mailer = services.mailer
        payload = delivery["payload"]
        if delivery["purpose"] == "notification":
            payload = notification_email(delivery, services.settings.base_url)
        try:
            message = build_message(delivery, mailer.sender, payload)
        except ValueError as exc:  # a header the email library refuses: retrying won't change it
            return Outcome(False, error=f"cannot build the email: {exc}"[:500], final=True)
        try:
            await mailer.send(message)
        except MailerNotConfigured as exc:
            return Outcome(False, error=str(exc), final=True)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return Outcome(False, error=f"recipients refused: {exc}"[:500], final=True)
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx is a permanent refusal; 4xx asks to try again later
            return Outcome(False, status_code=exc.code, error=str(exc)[:500], final=exc.code >= 500)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])
        return Outcome(True)

"""Email through SMTP (aiosmtplib), with a Message-ID stable per delivery so that a retried send
is recognisable as the same message."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from offerd.notifications.channels import Outcome
from offerd.settings import Settings


class MailerNotConfigured(Exception):
    pass


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def sender(self) -> str:
        return self.settings.smtp_from

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


def build_message(delivery: Mapping[str, Any], sender: str) -> EmailMessage:
    payload = delivery["payload"]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(payload["to"])
    message["Subject"] = payload["subject"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "offerd.invalid"
    message["Message-ID"] = f"<{delivery['id']}@{domain}>"
    message.set_content(payload["text"])
    if payload.get("html"):
        message.add_alternative(payload["html"], subtype="html")
    return message


class EmailChannel:
    name = "email"

    async def deliver(self, delivery: Mapping[str, Any], services: Any) -> Outcome:
        mailer = services.mailer
        try:
            await mailer.send(build_message(delivery, mailer.sender))
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

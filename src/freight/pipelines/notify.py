"""Tell people how a run went: `notify: {on_failure, on_success, on_late}` to webhooks or email.

A webhook gets one JSON POST; with `secret` it carries `X-Freight-Signature: sha256=<hex>`, the
HMAC-SHA256 of the body under the secret (read from an environment variable, never written in the
file), as GitHub signs its webhooks. Email goes through SMTP (`smtp` host:port, default
localhost:25). What a message says: the pipeline, the run, its interval, its state, the failing step
and its error, and a link to the run's page when the server's URL is known.

Sending never fails a run: a receiver that is down is logged and the run keeps its state. Who sends
is decided by `RunStore.claim_notice` (compare-and-set), so two followers of one run send once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from freight.pipelines.store import Run

log = logging.getLogger("freight.pipelines")
Event = Literal["failure", "success", "late"]
TIMEOUT = 10.0


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: str | None = Field(default=None, description="An http(s) URL that gets a JSON POST")
    secret_env: str | None = Field(
        default=None, description="Environment variable holding the webhook's HMAC secret"
    )
    email: list[str] | None = Field(default=None, description="Addresses to mail")
    smtp: str = Field(default="localhost:25", description="host:port of the SMTP server")
    sender: str = "freight@localhost"

    @model_validator(mode="after")
    def _one(self) -> Target:
        if (self.webhook is None) == (self.email is None):
            raise ValueError("give exactly one of `webhook` or `email`")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ValueError("`webhook` must be an http:// or https:// URL")
        return self


class Notify(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on_failure: list[Target] = Field(default_factory=list)
    on_success: list[Target] = Field(default_factory=list)
    on_late: list[Target] = Field(default_factory=list)
    link: str | None = Field(default=None, description="The server's base URL, for links to the run")

    def targets(self, event: Event) -> list[Target]:
        return {"failure": self.on_failure, "success": self.on_success, "late": self.on_late}[event]


def payload(run: Run, event: Event, link: str | None) -> dict[str, Any]:
    failed = next((s for s in run.steps if s.state == "failed"), None)
    return {
        "event": event,
        "pipeline": run.pipeline,
        "run": run.id,
        "state": run.state,
        "interval_start": run.interval_start_iso(),
        "interval_end": run.interval_end_iso(),
        "failed_step": failed.step if failed else None,
        "error": (failed.error if failed else None) or run.error,
        "link": f"{link.rstrip('/')}/pipelines/runs/{run.id}" if link else None,
    }


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(notify: Notify, run: Run, event: Event) -> list[str]:
    """Send `event` to every target; returns one line per target that failed (also logged)."""
    problems = []
    data = payload(run, event, notify.link)
    for target in notify.targets(event):
        try:
            if target.webhook is not None:
                _post(target, data)
            else:
                _mail(target, data)
        except Exception as exc:
            line = f"notify {event} of run {run.id} to {target.webhook or target.email}: {exc}"
            log.warning(line)
            problems.append(line)
    return problems


def _post(target: Target, data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "freight"}
    if target.secret_env:
        secret = os.environ.get(target.secret_env)
        if not secret:
            raise RuntimeError(f"${target.secret_env} is not set: not sending unsigned")
        headers["X-Freight-Signature"] = sign(body, secret)
    request = urllib.request.Request(str(target.webhook), data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        response.read()


def _mail(target: Target, data: dict[str, Any]) -> None:
    host, _, port = target.smtp.rpartition(":")
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.email or [])
    message["Subject"] = f"[freight] pipeline {data['pipeline']} run {data['run']}: {data['event']}"
    lines = [f"{k}: {v}" for k, v in data.items() if v is not None]
    message.set_content("\n".join(lines) + "\n")
    with smtplib.SMTP(host or "localhost", int(port or 25), timeout=TIMEOUT) as smtp:
        smtp.send_message(message)

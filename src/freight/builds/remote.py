"""RemoteBuilds: releases, deploys and builds on a `freight up` server (FREIGHT_URL), over /api/v1.

It answers like the embedded `Builds` (releases, history, deploy, rollback), so the CLI prints the
same lines in either mode, and it builds a workspace on the server: the server reads the folder from
its own filesystem (the same machine or a shared volume), so the path sent is absolute. Calls go
through RemoteJobClient's request helper: server errors come back as the same UserError subclasses.
"""

from __future__ import annotations

import time
from typing import Any

from freight.builds.api import ReleaseRow
from freight.builds.background import ENDED
from freight.builds.explain import Explanation
from freight.builds.progress import Reporter, replay
from freight.builds.store import Deployment, Release
from freight.jobs.remote import RemoteJobClient, _q

#: seconds the server may hold a request for a build's events (a long poll: it answers at once when
#: there is news); under RemoteJobClient's 30 s timeout
WAIT = 20.0
#: an empty page sooner than this means the server did not hold the request: ask again after it
MIN_POLL = 0.25


def _row(data: dict[str, Any]) -> ReleaseRow:
    fields = {k: data[k] for k in Release.__dataclass_fields__}
    return ReleaseRow(Release(**fields), tuple(data["current_in"]))


def _deployment(data: dict[str, Any]) -> Deployment:
    return Deployment(**{k: data[k] for k in Deployment.__dataclass_fields__})


class RemoteBuilds:
    def __init__(self, url: str, token: str | None, *, client: RemoteJobClient | None = None) -> None:
        self.http = client or RemoteJobClient(url, token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RemoteBuilds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # releases --------------------------------------------------------------------------------------

    def releases(self, app: str) -> list[ReleaseRow]:
        return [_row(d) for d in self.http.request("GET", f"/apps/{_q(app)}/releases")]

    def history(self, app: str, env: str | None = None, limit: int = 50) -> list[Deployment]:
        params: dict[str, Any] = {"limit": limit, **({"env": env} if env else {})}
        return [_deployment(d) for d in self.http.request("GET", f"/apps/{_q(app)}/history", params=params)]

    def deploy(
        self, app: str, release: str | None = None, env: str = "prod", actor: str | None = None
    ) -> tuple[str, Deployment | None]:
        """As Builds.deploy; the server records the token's name as the actor (`actor` is not sent)."""
        body = {"release": release, "env": env}
        done = self.http.request("POST", f"/apps/{_q(app)}/deploy", json=body)
        return str(done["release"]), _deployment(done["deployment"]) if done["deployment"] else None

    def rollback(self, app: str, env: str = "prod", actor: str | None = None) -> Deployment:
        return _deployment(self.http.request("POST", f"/apps/{_q(app)}/rollback", json={"env": env}))

    # builds ----------------------------------------------------------------------------------------

    def start_build(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /builds: the server plans at once (bad input is an error here) and answers the record."""
        return dict(self.http.request("POST", "/builds", json=request))

    def dry(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /builds/dry: the plan as the server would run it (its cache, its env)."""
        return dict(self.http.request("POST", "/builds/dry", json=request))

    def why(self, request: dict[str, Any], app: str) -> list[Explanation]:
        """POST /builds/why: APP's cache miss explained against the runs the server recorded."""
        answer = self.http.request("POST", "/builds/why", json={**request, "app": app})
        return [Explanation.from_dict(e) for e in answer]

    def build(self, build_id: str) -> dict[str, Any]:
        return dict(self.http.request("GET", f"/builds/{_q(build_id)}"))

    def cancel(self, build_id: str) -> dict[str, Any]:
        """POST /builds/{id}/cancel: the build's unfinished jobs are cancelled (an admin token)."""
        return dict(self.http.request("POST", f"/builds/{_q(build_id)}/cancel"))

    def follow(self, build_id: str, reporter: Reporter) -> dict[str, Any]:
        """Replay the build's progress into `reporter` as it comes (long polls) until it is over; its
        final record."""
        after = 0
        while True:
            asked = time.monotonic()
            page = self.http.request(
                "GET", f"/builds/{_q(build_id)}/events", params={"after": after, "wait": WAIT}
            )
            for event in page["events"]:
                replay(event, reporter)
            after = int(page["next"])
            if page["state"] in ENDED:
                return self.build(build_id)
            if not page["events"] and time.monotonic() - asked < MIN_POLL:
                time.sleep(MIN_POLL)  # a server that does not hold the request (an older one)

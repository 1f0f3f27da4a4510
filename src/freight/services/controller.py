"""ServiceController: keeps each service's replicas running, healthy and routed.

Each replica is a job (an image job on the host network, given its own $PORT) labelled with its
service, the port and its replica key (services/spec.py). One `tick()` per service:

1. forget replicas whose job ended (they are replaced below: restart on exit);
2. health-check the running ones (GET http://127.0.0.1:PORT/HEALTH, 2xx = healthy);
3. replicas whose key is the spec's are *current*, the others *old*. While old ones exist, the
   service rolls: start one current replica at a time (surge of one), and stop one old replica for
   each current one that became healthy, so healthy replicas never fall below the replica count.
   A new replica that is not healthy within `health_timeout`, or that exits twice, rolls the
   service back (the store swaps spec and previous): the old replicas are current again, the new
   ones are stopped;
4. otherwise start or stop replicas to match `replicas`;
5. the router's backends are the healthy replicas that are not being stopped.

Everything the controller knows is in the store (the service rows and the labelled jobs), so a
restarted controller re-attaches to the replicas that still run.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import time
from dataclasses import dataclass, field

from freight.errors import ConflictError, FreightError, NotFoundError
from freight.jobs.client import JobView
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.jobs.states import JobState
from freight.services.deploy import queues
from freight.services.router import Router
from freight.services.spec import LABEL, ServiceSpec
from freight.services.store import ServiceRow, ServiceStore

log = logging.getLogger("freight.services")
__all__ = ["LABEL", "Replica", "ServiceController", "free_port"]


@dataclass
class Replica:
    job_id: str
    port: int
    key: str
    started: float
    healthy: bool = False
    ever_healthy: bool = False
    stopping: bool = False


@dataclass
class _State:
    replicas: dict[str, Replica] = field(default_factory=dict)
    #: replicas of the current key that exited before they were ever healthy, since the last deploy
    failures: int = 0
    key: str = ""
    router: Router | None = None


class ServiceController:
    def __init__(self, jobs: JobService, *, check_timeout: float = 1.0) -> None:
        self.jobs = jobs
        self.store = ServiceStore(jobs.engine)
        self.check_timeout = check_timeout
        self._states: dict[str, _State] = {}
        self._adopted = False
        #: job id -> its health check path
        self._health_paths: dict[str, str] = {}

    def tick(self, now: float | None = None) -> bool:
        """Settle every service once. True while one is still changing (deploying or rolling, being
        removed, a replica stopping): the runner then ticks sooner, so a rollout is not paced by the
        idle interval. A service that keeps failing does not count: it is not retried faster."""
        now = time.time() if now is None else now
        if not self._adopted:
            self._adopt(now)
        rows = {row.name: row for row in self.store.all()}
        for name in set(self._states) - set(rows):
            self._stop_all(name)
        for row in rows.values():
            try:
                self._settle(row, now)
            except FreightError as exc:  # one service's trouble never stops the others
                log.warning("service %s: %s", row.name, exc)
        return any(row.status in ("deploying", "removing") for row in rows.values()) or any(
            r.stopping for state in self._states.values() for r in state.replicas.values()
        )

    def close(self) -> None:
        """Stop routing; the replicas run on, and the next tick adopts them again from the store."""
        for state in self._states.values():
            if state.router is not None:
                state.router.close()
        self._states.clear()
        self._adopted = False

    def replicas(self, name: str) -> list[Replica]:
        state = self._states.get(name)
        return list(state.replicas.values()) if state else []

    # -- one service --------------------------------------------------------------------------------

    def _settle(self, row: ServiceRow, now: float) -> None:
        state = self._states.setdefault(row.name, _State())
        if row.status == "removing":
            self._stop_all(row.name)
            self.store.delete(row.name)
            return
        spec = row.spec
        key = spec.replica_key()
        if key != state.key:
            state.key, state.failures = key, 0
        self._refresh(state, key)
        self._check_health(state)
        current = [r for r in state.replicas.values() if r.key == key and not r.stopping]
        old = [r for r in state.replicas.values() if r.key != key and not r.stopping]
        if old:
            self._roll(row, state, current, old, now)
        else:
            self._match(row, state, current, now)
        self._route(row, state)
        healthy = [r for r in current if r.healthy]
        settled = not old and len(healthy) == spec.replicas and len(current) == spec.replicas
        if settled and row.status == "deploying":
            self.store.set_status(row.name, "ready")

    def _refresh(self, state: _State, key: str) -> None:
        """Forget replicas whose job ended; count current ones that died before being healthy."""
        if not state.replicas:
            return
        views = {v.id: v for v in self.jobs.get_many(list(state.replicas))}
        for job_id, replica in list(state.replicas.items()):
            view = views.get(job_id)
            if view is None or view.terminal:
                del state.replicas[job_id]
                if replica.key == key and not replica.ever_healthy and not replica.stopping:
                    state.failures += 1

    def _check_health(self, state: _State) -> None:
        for replica in state.replicas.values():
            replica.healthy = not replica.stopping and self._healthy(replica)
            replica.ever_healthy = replica.ever_healthy or replica.healthy

    def _healthy(self, replica: Replica) -> bool:
        path = self._health_paths.get(replica.job_id, "/healthz")
        conn = http.client.HTTPConnection("127.0.0.1", replica.port, timeout=self.check_timeout)
        try:
            conn.request("GET", path)
            return 200 <= conn.getresponse().status < 300
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _roll(
        self, row: ServiceRow, state: _State, current: list[Replica], old: list[Replica], now: float
    ) -> None:
        spec = row.spec
        pending = [r for r in current if not r.healthy]
        stuck = [r for r in pending if now - r.started > spec.health_timeout]
        if (stuck or state.failures >= 2) and row.previous is not None:
            why = (
                "exited before it was healthy"
                if not stuck
                else f"not healthy within {spec.health_timeout:g}s"
            )
            if stuck:
                view = self.jobs.get(stuck[0].job_id)
                if view.state is not JobState.RUNNING:
                    why += f" ({view.state.value}: {view.reason or 'not started'})"
            log.warning("service %s: the new replica %s; rolling back", row.name, why)
            for replica in current:
                self._stop(state, replica)
            self.store.rollback(row.name, message=f"rolled back: a new replica {why}")
            return
        healthy_new = [r for r in current if r.healthy]
        healthy_old = [r for r in old if r.healthy]
        # stop an old replica for each new one that is healthy, keeping `replicas` healthy throughout
        while old and len(healthy_new) + len(healthy_old) > spec.replicas:
            victim = next((r for r in old if not r.healthy), None) or healthy_old.pop()
            old.remove(victim)
            if victim in healthy_old:
                healthy_old.remove(victim)
            self._stop(state, victim)
        unhealthy_old = [r for r in old if not r.healthy]
        for replica in unhealthy_old:  # an old replica that is down helps no one
            if len(healthy_new) + len(healthy_old) >= 1:
                self._stop(state, replica)
                old.remove(replica)
        if not pending and len(current) < spec.replicas:
            self._start(row.name, spec, state, now)

    def _match(self, row: ServiceRow, state: _State, current: list[Replica], now: float) -> None:
        spec = row.spec
        if state.failures >= 3 * max(1, spec.replicas):
            self.store.set_status(row.name, "failing", "replicas keep exiting before they are healthy")
        missing = spec.replicas - len(current)
        for _ in range(max(0, missing)):
            self._start(row.name, spec, state, now)
        extra = sorted(current, key=lambda r: (r.healthy, -r.started))[: max(0, -missing)]
        for replica in extra:
            self._stop(state, replica)

    def _route(self, row: ServiceRow, state: _State) -> None:
        backends = [r.port for r in state.replicas.values() if r.healthy and not r.stopping]
        if state.router is None or state.router.port != row.spec.port:
            if state.router is not None:
                state.router.close()
            try:
                state.router = Router(row.spec.port)
            except OSError as exc:
                state.router = None
                self.store.set_status(row.name, row.status, f"cannot listen on port {row.spec.port}: {exc}")
                return
        state.router.set_backends(backends)

    # -- replicas -----------------------------------------------------------------------------------

    def _start(self, name: str, spec: ServiceSpec, state: _State, now: float) -> None:
        port = free_port()
        key = spec.replica_key()
        job = JobSpec(
            name=f"{name}-{key[:6]}",
            command=spec.command,
            image=spec.image,
            network="host",
            env={**spec.env, "PORT": str(port)},
            inherit_env=False,
            resources=spec.resources,
            queue=spec.queue,
            grace=3.0,  # a server as the container's pid 1 often ignores SIGTERM: do not wait 10 s
            labels={
                LABEL: name,
                "freight.port": str(port),
                "freight.key": key,
                "freight.health": spec.health,
            },
        )
        view = self.jobs.submit(job, platform=True)  # freight.* labels are the platform's
        state.replicas[view.id] = Replica(view.id, port, key, now)
        self._health_paths[view.id] = spec.health

    def _stop(self, state: _State, replica: Replica) -> None:
        replica.stopping, replica.healthy = True, False
        if state.router is not None:  # out of the route before it goes
            state.router.set_backends(
                [r.port for r in state.replicas.values() if r.healthy and not r.stopping]
            )
        with contextlib.suppress(ConflictError, NotFoundError):
            self.jobs.cancel(replica.job_id)

    def _stop_all(self, name: str) -> None:
        state = self._states.pop(name, None)
        if state is None:
            return
        if state.router is not None:
            state.router.close()
            state.router = None
        for replica in state.replicas.values():
            with contextlib.suppress(ConflictError, NotFoundError):
                self.jobs.cancel(replica.job_id)

    def _adopt(self, now: float) -> None:
        """After a restart: take back the replicas that still run, from their jobs' labels. Only a job
        in one of its service's queues is a replica (freight.* labels are the platform's own: no user
        submission carries them, see jobs/policy.py; the queue check holds for jobs from before)."""
        self._adopted = True
        services = {row.name: row for row in self.store.all()}
        views: list[JobView] = []
        for state_name in ("queued", "starting", "running"):
            views += self.jobs.list_jobs(state=state_name, limit=1000)
        for view in views:
            labels = view.spec.labels
            name = labels.get(LABEL)
            row = services.get(name) if name else None
            if row is None or "freight.port" not in labels or view.spec.queue not in queues(row):
                continue
            state = self._states.setdefault(row.name, _State())
            replica = Replica(view.id, int(labels["freight.port"]), labels.get("freight.key", ""), now)
            state.replicas[view.id] = replica
            self._health_paths[view.id] = labels.get("freight.health", "/healthz")


def free_port() -> int:
    """A port no one listens on now, on 127.0.0.1 (a replica binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

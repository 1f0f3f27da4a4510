"""JobService: the embedded implementation of JobClient, on the local store.

Submissions, cancels and retries are written to the store and the scheduler is poked; the scheduler
may live in this process (`running()`), in a `freight up` on this machine (poked through its unix
socket), or elsewhere (it polls the store). Bad input raises UserError and writes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, update

from freight.config import Settings, load_settings
from freight.db.engine import open_engine
from freight.db.schema import attempts, definitions, dependencies, events, job_labels, jobs, queues
from freight.errors import ConflictError, FreightError, NotFoundError, UserError
from freight.jobs.client import JobView, check_attempt
from freight.jobs.eventfeed import EventFollower
from freight.jobs.explain import explained
from freight.jobs.lease import lease_holder
from freight.jobs.logarchive import LogArchive, LogArchiver
from freight.jobs.policy import check_labels, check_queue_policy
from freight.jobs.scaling import Scaler
from freight.jobs.scheduler import LEASE, LEASE_TTL, LeaseHeldError, Scheduler, detect_capacity
from freight.jobs.scheduler.nodes import NodeSource
from freight.jobs.secrets import MIN_MASKED, SecretStore, mask_bytes
from freight.jobs.spec import JobSpec, parse_spec
from freight.jobs.states import JobState, check_transition
from freight.jobs.store import (
    JobRecord,
    attempt_views,
    event_rows,
    job_views,
    load_jobs,
    resolve_job_id,
)
from freight.jobs.submit import Submitter, ensure_queues
from freight.runtime.base import Runtime
from freight.text import find_bad_text

log = logging.getLogger("freight.service")

#: seconds between full state checks in wait()
_WAIT_RECHECK = 2.0
#: at most this long between two reads of the events table in wait(), however busy this process's
#: scheduler is (its endings are read from memory; other writers' changes only from the store)
_WAIT_FOLLOW = 0.2
#: bytes per read of a log (a big log is streamed, not read whole)
LOG_CHUNK = 1 << 20
#: how long a follower waits for an ended attempt's log that ran on another node to be archived
ARCHIVE_WAIT = 10.0
#: the events wait() follows: endings, and manual retries of ended jobs
_WAIT_STATES = [s.value for s in JobState if s.terminal] + [JobState.QUEUED.value]


def _one_job(conn: Any, job_id: str) -> JobRecord:
    """The job `job_id` names (its id or a unique prefix of it)."""
    found = load_jobs(conn, [resolve_job_id(conn, job_id)])
    if not found:  # deleted between the two reads
        raise NotFoundError(f"no job {job_id!r}", hint="see `freight jobs ls`")
    return found[0]


def _move(conn: Any, job: JobRecord, to: JobState, now: float, detail: str, **values: Any) -> None:
    """A request's transition (cancel, retry): compare-and-set `job` from the state it was read in
    to `to`, with `values`, and its event; nothing if someone moved the job first. Raises
    IllegalTransition if the transition table does not allow it."""
    check_transition(job.id, job.state, to)
    moved = conn.execute(
        update(jobs)
        .where(and_(jobs.c.id == job.id, jobs.c.state == job.state.value))
        .values(state=to.value, updated_at=now, **values)
    )
    if moved.rowcount == 1:
        conn.execute(
            insert(events).values(
                job_id=job.id, from_state=job.state.value, to_state=to.value, at=now, detail=detail
            )
        )


def _definition_out(row: dict[str, Any]) -> dict[str, Any]:
    row = {**row, "problem": None}
    try:
        spec = json.loads(row["spec"])
    except ValueError:
        return row | {"spec": {}, "problem": "the stored spec is not JSON"}
    if find_bad_text([row["name"], row["description"], spec]) is not None:
        name = str(row["name"]).encode("utf-8", "backslashreplace").decode("utf-8")
        problem = "the stored spec holds text that is not UTF-8; remove this version"
        return row | {"name": name, "spec": {}, "description": None, "problem": problem}
    if not isinstance(spec, dict):
        return row | {"spec": {}, "problem": "the stored spec is not a mapping; remove this version"}
    return row | {"spec": spec}


def secure_home(home: Path) -> None:
    """FREIGHT_HOME holds the store, the logs, the objects and the keys: closed to everyone else
    (mode 0700), so a job running as the job user can read none of it."""
    if home.stat().st_uid == os.geteuid() and home.stat().st_mode & 0o077:
        home.chmod(0o700)


class JobService:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.log_archive = LogArchive(settings)
        self.scheduler: Scheduler | None = None
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self._scheduler_lock = threading.RLock()
        self._standby: threading.Thread | None = None
        self._standby_stop = threading.Event()
        self._retry_every = LEASE_TTL / 3
        self._stopping = False
        self._node_capacity: tuple[float, int] | None = None
        self.secrets = SecretStore(engine, settings)
        self.submitter = Submitter(settings, engine, self.secrets, self._capacity, self.poke)
        self._secret_values: dict[str, tuple[bytes, ...]] = {}

    @classmethod
    def open(cls, settings: Settings | None = None) -> JobService:
        settings = settings or load_settings()
        try:
            settings.home.mkdir(parents=True, exist_ok=True)
            secure_home(settings.home)
        except OSError as exc:
            raise UserError(
                f"cannot create {settings.home}: {exc.strerror}",
                where="FREIGHT_HOME",
                hint="set it to a folder you can write",
            ) from None
        return cls(settings, open_engine(settings.database_url))

    def close(self) -> None:
        self.stop_scheduler()
        self.engine.dispose()

    def __enter__(self) -> JobService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the scheduler ------------------------------------------------------------------------------

    def scheduler_holder(self) -> str | None:
        """Who runs the scheduler on this store right now, if anyone."""
        with self.engine.connect() as conn:
            return lease_holder(conn, LEASE)

    def start_scheduler(self, *, poll_interval: float = 0.5) -> Scheduler:
        """Run a scheduler in a background thread of this process. Raises LeaseHeldError when another
        live scheduler serves this store."""
        with self._scheduler_lock:
            if self.scheduler is not None:
                return self.scheduler
            runtime, nodes = self._runtime_and_nodes()
            scaler = self._scaler(runtime)
            scheduler = Scheduler(
                self.engine,
                runtime,
                self.settings,
                poll_interval=poll_interval,
                on_commit=self._notify,
                nodes=nodes,
                scaler=scaler,
            )
            try:
                scheduler.start()
            except BaseException:
                scheduler.close()
                raise
            self.scheduler = scheduler
            self._thread = threading.Thread(
                target=self._loop, args=(scheduler, poll_interval), name="freight-scheduler", daemon=True
            )
            self._thread.start()
            return scheduler

    def _scaler(self, runtime: Runtime) -> Scaler | None:
        """The autoscaling wiring when FREIGHT_AUTOSCALE is on (a Ray cluster's autoscaler only)."""
        from freight.jobs.autoscale import autoscale_settings

        settings = autoscale_settings()
        if not settings.enabled:
            return None
        if not self.settings.ray_address:
            raise UserError(
                "autoscaling needs a Ray cluster",
                where="FREIGHT_AUTOSCALE",
                hint="set FREIGHT_RAY_ADDRESS (or freight up --ray ADDRESS), or turn FREIGHT_AUTOSCALE off",
            )
        from freight.runtime.ray_autoscale import RayAutoscaler
        from freight.runtime.ray_holds import NodeHolds

        address = self.settings.ray_address
        retire = getattr(runtime, "retire", None)  # the cluster runtime's: idle agents let go
        scaler = Scaler(
            self.engine, settings, RayAutoscaler(address).request, hold=NodeHolds(address).sync, retire=retire
        )
        scaler.start()
        return scaler

    def _runtime_and_nodes(self) -> tuple[Runtime, NodeSource | None]:
        """This machine's runtime (embedded), or a Ray cluster's with its nodes (ray_address)."""
        if self.settings.ray_address:
            from freight.jobs.scheduler.nodes import ClusterNodes
            from freight.runtime.ray_cluster import ClusterRuntime, connect

            connect(self.settings.ray_address, self.settings.home)
            cluster = ClusterRuntime.for_settings(self.settings)
            return cluster, ClusterNodes(cluster)
        from freight.runtime.factory import create_job_runtime

        return create_job_runtime(self.settings), None

    def nodes(self) -> list[dict[str, Any]]:
        """The nodes jobs are placed on (see NodeTable.snapshot): as the scheduler of this process
        last saw them, else as their source lists them now with what the store says runs there
        (another process schedules: `freight nodes` beside `freight up`, a standby server)."""
        scheduler = self.scheduler
        if scheduler is not None:
            rows: list[dict[str, Any]] = scheduler.snapshot()["nodes"]
            return rows
        from freight.jobs.scheduler.nodes import NodeTable

        source: NodeSource
        if self.settings.ray_address:
            from freight.jobs.scheduler.nodes import ClusterNodes
            from freight.runtime.ray_cluster import ClusterRuntime, connect

            connect(self.settings.ray_address, self.settings.home)
            source = ClusterNodes(ClusterRuntime.for_settings(self.settings))
        else:
            from freight.jobs.scheduler.nodes import LocalNodes

            source = LocalNodes(os.uname().nodename, *self._capacity())
        table = NodeTable(source)
        table.refresh()
        for node, cpus, memory in self._running_charges():
            table.charge(node, cpus, memory)
        return table.snapshot()

    def _running_charges(self) -> list[tuple[str, float, int]]:
        """(node, cpus, memory) of every attempt starting or running, as the store has them: what
        the scheduler of another process holds on each node. Driven by the jobs' state index and
        the attempts' primary keys, so it costs what runs, not what the store holds."""
        live = [JobState.STARTING.value, JobState.RUNNING.value]
        with self.engine.connect() as conn:
            current = [
                f"{job_id}-{number}"
                for job_id, number in conn.execute(
                    select(jobs.c.id, jobs.c.attempts).where(jobs.c.state.in_(live))
                )
            ]
            charges: list[tuple[str, float, int]] = []
            for at in range(0, len(current), 500):
                rows = conn.execute(
                    select(attempts.c.node, attempts.c.cpus, attempts.c.memory).where(
                        attempts.c.id.in_(current[at : at + 500]), attempts.c.state.in_(live)
                    )
                )
                charges += [(node, cpus, memory) for node, cpus, memory in rows if node]
        return charges

    def capacity(self) -> dict[str, Any]:
        """The capacity page's view: nodes, the demand the autoscaler was given (this process's
        scheduler's; none when another process schedules) and the latest scaling events (from the
        store: any server shows them)."""
        from freight.jobs.scaling import recent_events

        scheduler = self.scheduler
        demand = scheduler.snapshot().get("demand") if scheduler is not None else None
        return {
            "nodes": self.nodes(),
            "demand": demand or {"autoscale": False},
            "scaling_events": recent_events(self.engine),
        }

    def start_or_stand_by(
        self, *, poll_interval: float = 0.5, retry_every: float = LEASE_TTL / 3
    ) -> Scheduler | None:
        """Run the scheduler if this store has none; otherwise stand by and take over when the lease
        holder goes away (several servers on one PostgreSQL store: one schedules, all serve the API;
        or a command that borrowed another command's scheduler: see running())."""
        if self.scheduler_holder() is None:  # asked first: a runtime is dear to make for nothing
            with contextlib.suppress(LeaseHeldError):  # taken meanwhile: stand by for it
                return self.start_scheduler(poll_interval=poll_interval)
        self._standby_stop.clear()
        self._retry_every = retry_every
        self._start_standby(poll_interval)
        return None

    def _start_standby(self, poll_interval: float) -> None:
        self._standby = threading.Thread(
            target=self._stand_by,
            args=(poll_interval, self._retry_every),
            name="freight-standby",
            daemon=True,
        )
        self._standby.start()

    def _stand_by(self, poll_interval: float, retry_every: float) -> None:
        # Logs that ended here before this node's last scheduler archived them: readers on the
        # scheduling server find them in the object store only.
        archiver = LogArchiver(self.engine, self.log_archive, os.uname().nodename)
        try:
            archiver.run_once([], scan=True)
        except Exception:
            log.exception("archiving this node's logs failed; the next start tries again")
        while not self._standby_stop.wait(retry_every):
            try:
                if self.scheduler_holder() is not None:
                    continue
                self.start_scheduler(poll_interval=poll_interval)
            except LeaseHeldError:
                continue
            except Exception:  # the store is unreachable for now, say: keep standing by
                log.exception("starting the scheduler failed; trying again in %gs", retry_every)
                continue
            log.info("took over the scheduler lease: this process now schedules the store")
            return

    def _loop(self, scheduler: Scheduler, poll_interval: float) -> None:
        """Run the scheduler; if it ends without stop_scheduler() (it lost its lease, or a tick
        failed), close it and stand by: a fresh scheduler recovers from the store (running jobs keep
        running meanwhile) once the lease is free. Never a silently dead scheduler thread."""
        try:
            scheduler.run()
        except Exception:
            log.exception("the scheduler failed; it restarts from the store (running jobs keep running)")
        finally:
            self._notify()
        if scheduler.stop_requested:
            return
        with self._scheduler_lock:
            if self.scheduler is not scheduler or self._stopping:
                return
            self.scheduler, self._thread = None, None
            try:
                scheduler.close()
            except Exception:
                log.exception("closing the failed scheduler failed")
            self._standby_stop.clear()
            self._start_standby(poll_interval)

    def stop_scheduler(self) -> None:
        with self._scheduler_lock:
            self._stopping = True  # a scheduler that ends now does not stand by again
        try:
            if self._standby is not None:
                self._standby_stop.set()
                self._standby.join()
                self._standby = None
            with self._scheduler_lock:
                scheduler, thread = self.scheduler, self._thread
                if scheduler is None:
                    return
                scheduler.stop()
            if thread is not None:
                thread.join()  # without the lock: a loop ending on its own takes it to see _stopping
            with self._scheduler_lock:
                scheduler.close()
                self.scheduler = None
                self._thread = None
        finally:
            self._stopping = False

    @contextlib.contextmanager
    def running(self, *, take_over_every: float = 1.0) -> Iterator[Scheduler | None]:
        """Make sure a scheduler serves this store while the block runs: reuse a live one (e.g. a
        `freight up`, or another `freight build` on this machine), or run one in this process and stop
        it afterwards. A borrowed scheduler may go away first (the other command ended): this process
        stands by and takes over, checking every `take_over_every` seconds, so its jobs never wait
        for nobody."""
        if self.scheduler is not None:
            yield self.scheduler
            return
        try:
            yield self.start_or_stand_by(retry_every=take_over_every)
        finally:
            self.stop_scheduler()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def poke(self, submitted: Sequence[JobRecord] | None = None) -> None:
        if self.scheduler is not None:
            self.scheduler.wake(submitted)
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.sendto(b"!", str(self.settings.home / "scheduler.sock"))
        except OSError:
            pass  # no local scheduler listening; a remote one polls the store
        finally:
            sock.close()

    # --- submit (jobs/submit.py) ---------------------------------------------------------------------

    def resolve(
        self, spec: JobSpec | dict[str, Any], definition: str | None = None
    ) -> tuple[JobSpec, str | None]:
        """Apply a definition's template (if any) and validate."""
        return self.submitter.resolve(spec, definition)

    def submit(
        self, spec: JobSpec | dict[str, Any], *, definition: str | None = None, platform: bool = False
    ) -> JobView:
        """Queue a job. `platform`: the platform's own job (a pipeline step, a build task), which may
        run as the server's user without its queue allowing it (see jobs/policy.py)."""
        resolved, ref = self.resolve(spec, definition)
        return self.submitter.insert([(resolved, ref)], platform=platform)[0]

    def submit_many(self, specs: Sequence[JobSpec]) -> list[JobView]:
        return self.submitter.insert([(spec, None) for spec in specs])

    def pin_images(self, items: Sequence[tuple[JobSpec, str | None]]) -> list[tuple[JobSpec, str | None]]:
        """Each image job's image pinned to a digest (asks podman or the registry: may take a while)."""
        return [(self.submitter.pin_image(spec), ref) for spec, ref in items]

    def submit_groups(
        self, groups: Sequence[Sequence[tuple[JobSpec, str | None]]]
    ) -> list[list[JobView] | FreightError]:
        """Group commit: many independent submissions, their images pinned (`pin_images`), in one
        transaction (see Submitter.submit_groups)."""
        return self.submitter.submit_groups(groups)

    def _capacity(self) -> tuple[float, int]:
        """The most one job may ask for: this machine's capacity; on a cluster the scheduler tells
        a job too big for every node so, naming each node's reason."""
        if self.settings.ray_address:
            return float("inf"), 1 << 62
        if self._node_capacity is None:
            self._node_capacity = detect_capacity(self.settings)
        return self._node_capacity

    # --- read ---------------------------------------------------------------------------------------

    def resolve_id(self, job_id: str, queues: Iterable[str] | None = None) -> str:
        """The full id of the job `job_id` names: its id or a unique prefix (within `queues`)."""
        with self.engine.connect() as conn:
            return resolve_job_id(conn, job_id, queues)

    def get(self, job_id: str) -> JobView:
        """One job, by its id or a unique prefix of it."""
        with self.engine.connect() as conn:
            job = _one_job(conn, job_id)
            return explained(conn, [job.view(attempt_views(conn, job.id))], count_ahead=True)[0]

    def get_many(self, job_ids: Sequence[str]) -> list[JobView]:
        with self.engine.connect() as conn:
            return job_views(conn, job_ids)

    def list_jobs(
        self,
        *,
        state: str | None = None,
        queue: str | None = None,
        label: dict[str, str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[JobView]:
        """Newest first. `cursor` is the id of the last job of the previous page."""
        if limit < 1:
            raise UserError("limit must be 1 or more", where="limit")
        if state is not None and state not in {s.value for s in JobState}:
            raise UserError(
                f"unknown state {state!r}", where="state", hint=", ".join(s.value for s in JobState)
            )
        query = select(jobs)
        order = jobs.c.id
        labels = sorted((label or {}).items())
        if labels:
            # driven by the first label's index entries, newest first; the others are checked per row
            (key, value), rest = labels[0], labels[1:]
            query = query.join(job_labels, job_labels.c.job_id == jobs.c.id).where(
                job_labels.c.key == key, job_labels.c.value == value
            )
            order = job_labels.c.job_id
            for key, value in rest:
                other = job_labels.alias()
                query = query.where(
                    select(other.c.job_id)
                    .where(other.c.job_id == jobs.c.id, other.c.key == key, other.c.value == value)
                    .exists()
                )
        if state:
            query = query.where(jobs.c.state == state)
        if queue:
            query = query.where(jobs.c.queue == queue)
        if cursor:
            query = query.where(order < cursor)
        # Keyset pages: every filter has an index ending in id (db/schema.py), so a page costs the
        # same at the first job as at the millionth.
        query = query.order_by(order.desc()).limit(limit)
        with self.engine.connect() as conn:
            records = [JobRecord.from_row(row) for row in conn.execute(query)]
            return explained(conn, [record.view() for record in records])

    def usage(self, job_id: str) -> tuple[int | None, float | None] | None:
        """Live (memory bytes, cpu seconds) of a running job, when the scheduler runs in this process."""
        return self.scheduler.usage(job_id) if self.scheduler is not None else None

    def events(self, job_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """The newest `limit` transitions, of one job (its id or a unique prefix) or of all."""
        if limit < 1:
            raise UserError("limit must be 1 or more", where="limit")
        with self.engine.connect() as conn:
            return event_rows(conn, job_id and resolve_job_id(conn, job_id), limit)

    def wait(self, job_ids: Sequence[str], timeout: float | None = None) -> list[JobView]:
        """Block until every job is terminal (or `timeout` passes). Follows the events table
        (jobs/eventfeed.py, which also reads an event that commits after later ids on PostgreSQL), so
        each wake-up reads only what changed, however many jobs are awaited; a full re-check every
        few seconds is the safety net for a transaction that stays open longer. A wake-up by this
        process's scheduler takes the jobs it ended from its EndLog, without a query; the store is
        still read at least every 0.2 s for other writers, and the jobs' states are read at the end:
        a job found not terminal there (retried by hand meanwhile) is waited for again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wanted = set(job_ids)
        seen = self._settled()  # before the read: a commit after it is followed by another read
        follower = EventFollower()
        with self.engine.connect() as conn:
            follower.start(conn, time.monotonic())
            states = self._states(conn, list(wanted))
        missing = wanted - states.keys()
        if missing:
            raise NotFoundError(f"no job {sorted(missing)[0]!r}")
        pending = {job_id for job_id, state in states.items() if not state.terminal}
        while True:
            self._wait_pending(pending, wanted, follower, seen, deadline)
            seen = self._settled()
            views = self.get_many(job_ids)
            pending = {v.id for v in views if not v.state.terminal}
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                return views

    def _wait_pending(
        self,
        pending: set[str],
        wanted: set[str],
        follower: EventFollower,
        seen: int,
        deadline: float | None,
    ) -> None:
        """Take jobs out of `pending` as they end, until none is left or the deadline passes.
        `seen`: the scheduler's settled count before the states in `pending` were read."""
        now = time.monotonic()
        recheck_at = now + _WAIT_RECHECK
        follow_at = now + _WAIT_FOLLOW
        while pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            local = self._settled() != seen
            if not local:
                with self._changed:
                    notified = self._changed.wait(_WAIT_FOLLOW if left is None else min(_WAIT_FOLLOW, left))
                local = self._settled() != seen
                # woken by this process's scheduler for a commit that ended nothing: nothing to read
                # (changes by other processes are read on the timeouts, as before)
                if notified and not local and time.monotonic() < recheck_at:
                    continue
            scheduler = self.scheduler
            now = time.monotonic()
            if local and scheduler is not None and now < min(recheck_at, follow_at):
                count, ended = scheduler.ends.since(seen)
                if ended is not None:  # None: some of those commits left its window; read the store
                    seen = count
                    pending.difference_update(ended)
                    continue
            seen = self._settled()
            follow_at = now + _WAIT_FOLLOW
            with self.engine.connect() as conn:
                if now >= recheck_at:
                    states = self._states(conn, list(pending))
                    pending.intersection_update(j for j, state in states.items() if not state.terminal)
                    recheck_at = time.monotonic() + _WAIT_RECHECK
                    continue
                rows = follower.read(
                    conn,
                    time.monotonic(),
                    [events.c.id, events.c.job_id, events.c.from_state, events.c.to_state],
                    match=events.c.to_state.in_(_WAIT_STATES),
                )
            for row in rows:
                if row.job_id not in wanted:
                    continue
                if row.to_state == JobState.QUEUED.value:
                    if row.from_state and JobState(row.from_state).terminal:
                        pending.add(row.job_id)  # retried by hand after it ended
                else:
                    pending.discard(row.job_id)

    def _settled(self) -> int:
        """How many commits of this process's scheduler ended or re-queued a job (-1: none runs here)."""
        scheduler = self.scheduler
        return -1 if scheduler is None else scheduler.settled

    def _states(self, conn: Any, job_ids: list[str]) -> dict[str, JobState]:
        out: dict[str, JobState] = {}
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            for row in conn.execute(select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(chunk))):
                out[row.id] = JobState(row.state)
        return out

    # --- control ------------------------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobView:
        now = time.time()
        with self.engine.begin() as conn:
            job = _one_job(conn, job_id)
            if job.state.terminal:
                raise ConflictError(f"job {job.id} already ended ({job.state.value})", where=job.id)
            if job.state in (JobState.QUEUED, JobState.RETRYING):
                _move(
                    conn,
                    job,
                    JobState.CANCELLED,
                    now,
                    "cancelled",
                    ended_at=now,
                    reason="cancelled before it started",
                )
            else:
                conn.execute(update(jobs).where(jobs.c.id == job.id).values(cancel_requested=True))
        self.poke()
        return self.get(job.id)

    def retry(self, job_id: str) -> JobView:
        """Queue a finished job again (a new attempt of the same job, same id)."""
        now = time.time()
        with self.engine.begin() as conn:
            job = _one_job(conn, job_id)
            if not job.state.terminal:
                raise ConflictError(f"job {job.id} is {job.state.value}; only a finished job can be retried")
            _move(
                conn,
                job,
                JobState.QUEUED,
                now,
                "retried by request",
                ended_at=None,
                reason=None,
                exit_code=None,
                not_before=None,
            )
        self.poke()
        return self.get(job.id)

    def logs(self, job_id: str, *, attempt: int | None = None, follow: bool = False) -> Iterator[bytes]:
        view = self.get(job_id)
        check_attempt(view, attempt, follow=follow)
        job_id = view.id
        number = attempt or view.attempts
        if number == 0:
            if not follow:
                return
            view = self._wait_started(job_id)
            number = view.attempts
            if number == 0:
                return
        offset = 0
        while True:
            # while it runs, its log is on its node only: no need to ask the object store
            chunk = self.read_log(job_id, number, offset, LOG_CHUNK, archived=not follow)
            if chunk:
                offset += len(chunk)
                yield chunk
                continue
            if not follow:
                return
            current = self.get(job_id)
            if current.attempts != number or current.terminal or current.state is JobState.RETRYING:
                # one last read: the attempt ended, its log is complete (here or in the archive)
                deadline = time.monotonic() + ARCHIVE_WAIT
                while self.log_in_flight(job_id, number) and time.monotonic() < deadline:
                    time.sleep(0.1)
                while rest := self.read_log(job_id, number, offset, LOG_CHUNK):
                    offset += len(rest)
                    yield rest
                return
            time.sleep(0.1)

    def read_log(
        self, job_id: str, number: int, offset: int = 0, size: int | None = None, *, archived: bool = True
    ) -> bytes:
        """Bytes of an attempt's log from `offset`: the local file, else (`archived`) the object store's
        copy; b"" past the end or when the log is nowhere. The values of the job's secrets are masked
        (one * per byte, so offsets stay true), also where a read would cut one in two."""
        values = self._log_secrets(job_id)
        if not values:
            return self._read_log(job_id, number, offset, size, archived=archived)
        margin = max(len(v) for v in values) - 1
        start = max(0, offset - margin)
        wanted = None if size is None else size + (offset - start) + margin
        data = mask_bytes(self._read_log(job_id, number, start, wanted, archived=archived), values)
        head = offset - start
        return data[head : None if size is None else head + size]

    def _read_log(self, job_id: str, number: int, offset: int, size: int | None, *, archived: bool) -> bytes:
        """The local file, else (on a Ray cluster, while the attempt runs on a node whose disk this
        server does not see) its node's agent, else (`archived`) the object store's copy."""
        scheduler = self.scheduler
        if (
            scheduler is not None
            and scheduler.nodes.remote
            and not self.settings.log_path(job_id, number).exists()
        ):
            data = scheduler.read_log(job_id, number, offset)
            if data is not None:
                return data if size is None else data[:size]
        return self.log_archive.read(job_id, number, offset, size, archived=archived)

    def _log_secrets(self, job_id: str) -> tuple[bytes, ...]:
        """The values of the secrets `job_id` was given (cached: a followed log reads many times)."""
        found = self._secret_values.get(job_id)
        if found is not None:
            return found
        with self.engine.connect() as conn:
            spec_text = conn.execute(select(jobs.c.spec).where(jobs.c.id == job_id)).scalar()
        names = json.loads(spec_text).get("secrets") or {} if spec_text else {}
        try:
            values = self.secrets.values(names.values()) if names else {}
        except FreightError:  # removed since, or the key changed: nothing known to mask
            values = {}
        found = tuple(v.encode() for v in values.values() if len(v) >= MIN_MASKED)
        if len(self._secret_values) > 1024:
            self._secret_values.clear()
        self._secret_values[job_id] = found
        return found

    def log_in_flight(self, job_id: str, number: int) -> bool:
        """Whether an ended attempt's log is still only on the node that ran it (another one): its
        scheduler has not archived it yet, so a reader elsewhere should wait a little for it."""
        if self.settings.log_path(job_id, number).exists():
            return False
        with self.engine.connect() as conn:
            row = conn.execute(
                select(attempts.c.node, attempts.c.log_archived_at).where(
                    attempts.c.id == f"{job_id}-{number}"
                )
            ).first()
        return row is not None and row.log_archived_at is None and row.node not in (None, os.uname().nodename)

    def _wait_started(self, job_id: str) -> JobView:
        while True:
            view = self.get(job_id)
            if view.attempts > 0 or view.terminal:
                return view
            time.sleep(0.1)

    # --- retention ----------------------------------------------------------------------------------

    def purge(self, *, older_than: float, dry_run: bool = False) -> list[str]:
        """Delete jobs that ended more than `older_than` seconds ago: their rows, attempts, events,
        dependency links and logs, local and archived (like Nomad's job GC or Airflow's `db clean`).
        Returns their ids."""
        if older_than < 0:
            raise UserError("older_than cannot be negative", where="older_than")
        cutoff = time.time() - older_than
        terminal = [s.value for s in JobState if s.terminal]
        with self.engine.begin() as conn:
            ids = [
                r.id
                for r in conn.execute(
                    # Locked until the commit (PostgreSQL; SQLite's write lock covers it already): a
                    # retry between this select and the deletes waits, then finds the job gone,
                    # instead of the job being deleted after it was queued again.
                    select(jobs.c.id)
                    .where(jobs.c.state.in_(terminal), jobs.c.ended_at < cutoff)
                    .with_for_update()
                )
            ]
            if dry_run or not ids:
                return ids
            logs: list[str] = []
            archived: list[tuple[str, int]] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for r in conn.execute(
                    select(attempts.c.job_id, attempts.c.number, attempts.c.log_path).where(
                        attempts.c.job_id.in_(chunk)
                    )
                ):
                    archived.append((r.job_id, r.number))
                    if r.log_path:
                        logs.append(r.log_path)
                conn.execute(delete(dependencies).where(dependencies.c.job_id.in_(chunk)))
                conn.execute(delete(dependencies).where(dependencies.c.depends_on.in_(chunk)))
                conn.execute(delete(events).where(events.c.job_id.in_(chunk)))
                conn.execute(delete(attempts).where(attempts.c.job_id.in_(chunk)))
                conn.execute(delete(job_labels).where(job_labels.c.job_id.in_(chunk)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(chunk)))
        for path in logs:  # after the commit: a failed delete leaves rows, never rows without logs
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.log_archive.delete(archived)
        return ids

    # --- definitions and queues ---------------------------------------------------------------------

    def register_definition(self, name: str, template: dict[str, Any], description: str | None = None) -> int:
        """Store a new version of a named job template. Returns its version number."""
        if not name or any(c in name for c in ": /"):
            raise UserError(
                f"bad definition name {name!r}", where="name", hint="letters, digits, '.', '_' or '-'"
            )
        parsed = parse_spec(template, source=f"definition {name}")
        check_labels(parsed.labels, where=f"definition {name}")
        with self.engine.begin() as conn:
            latest = conn.execute(
                select(func.max(definitions.c.version)).where(definitions.c.name == name)
            ).scalar()
            version = int(latest or 0) + 1
            conn.execute(
                insert(definitions).values(
                    name=name,
                    version=version,
                    spec=json.dumps(template),
                    description=description,
                    created_at=time.time(),
                )
            )
        return version

    def definitions(self) -> list[dict[str, Any]]:
        """Every version, newest first per name. A row the store holds but freight cannot read back
        (written before its text was checked: a lone surrogate, broken JSON) is listed with an empty
        spec and a `problem`, so one bad row never breaks the list; remove it with delete_definition."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(definitions).order_by(definitions.c.name, definitions.c.version.desc())
            )
            return [_definition_out(dict(r._mapping)) for r in rows]

    def delete_definition(self, name: str, version: int | None = None) -> int:
        """Remove one version of a definition, or every version; how many went. Jobs submitted from
        it keep their own copy of the spec."""
        where = definitions.c.name == name
        if version is not None:
            where = where & (definitions.c.version == version)
        with self.engine.begin() as conn:
            gone = conn.execute(delete(definitions).where(where)).rowcount
        if not gone:
            ref = name if version is None else f"{name}:{version}"
            hint = "see `freight definitions`"
            raise NotFoundError(f"no job definition {ref!r}", where="definition", hint=hint)
        return int(gone)

    def set_queue(
        self,
        name: str,
        *,
        weight: float | None = None,
        priority: int | None = None,
        paused: bool | None = None,
        policy: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change a queue. `policy` holds any of allow_root, allow_inherit_env (bools) and max_cpus,
        max_memory, default_cpus, default_memory (a number, or 0 to clear it)."""
        if weight is not None and weight <= 0:
            raise UserError("weight must be more than 0", where="weight")
        now = time.time()
        with self.engine.begin() as conn:
            current = conn.execute(select(queues).where(queues.c.name == name)).first()
            checked = check_queue_policy(
                dict(policy or {}), self._capacity(), dict(current._mapping) if current else None
            )
            ensure_queues(conn, {name}, now)
            values: dict[str, Any] = dict(checked)
            if weight is not None:
                values["weight"] = weight
            if priority is not None:
                values["priority"] = priority
            if paused is not None:
                values["paused"] = paused
            if values:
                conn.execute(update(queues).where(queues.c.name == name).values(**values))
        self.poke()
        return next(q for q in self.queues() if q["name"] == name)

    def queue_names(self) -> list[str]:
        """Every queue's name, sorted: what a filter menu needs, without counting any jobs."""
        with self.engine.connect() as conn:
            return [r.name for r in conn.execute(select(queues.c.name).order_by(queues.c.name))]

    def queues(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(queues).order_by(queues.c.name)).all()
            counts = conn.execute(
                select(jobs.c.queue, jobs.c.state, func.count()).group_by(jobs.c.queue, jobs.c.state)
            ).all()
            # what each queue's running attempts hold: the fair share the scheduler weighs
            active = [JobState.STARTING.value, JobState.RUNNING.value]
            held = conn.execute(
                select(jobs.c.queue, func.sum(attempts.c.cpus), func.sum(attempts.c.memory))
                .join(attempts, attempts.c.job_id == jobs.c.id)
                .where(jobs.c.state.in_(active), attempts.c.state.in_(active))
                .group_by(jobs.c.queue)
            ).all()
        by_queue: dict[str, dict[str, int]] = {}
        for queue, state, count in counts:
            by_queue.setdefault(queue, {})[state] = int(count)
        in_use = {q: {"cpus": float(c or 0), "memory": int(m or 0)} for q, c, m in held}
        return [
            dict(r._mapping)
            | {"jobs": by_queue.get(r.name, {}), "in_use": in_use.get(r.name, {"cpus": 0.0, "memory": 0})}
            for r in rows
        ]

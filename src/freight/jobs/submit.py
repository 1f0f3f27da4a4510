"""Submitting jobs: resolve a definition, pin images, check each submission (queue policy, secrets,
idempotency keys, dependencies) and write the accepted ones in one transaction (group commit).
Bad input raises UserError (or answers a group with it) and writes nothing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from freight.config import Settings
from freight.db.schema import dependencies, events, job_labels, jobs, queues
from freight.errors import ConflictError, FreightError, NotFoundError, TransientError, UserError
from freight.jobs.client import JobView
from freight.jobs.explain import explained
from freight.jobs.policy import QueuePolicy, admit
from freight.jobs.secrets import SecretStore
from freight.jobs.spec import JobSpec, merge_overrides, parse_spec
from freight.jobs.store import JobRecord, definition_row, record_from_spec

Items = Sequence[tuple[JobSpec, str | None]]

log = logging.getLogger("freight.submit")


class Submitter:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        secrets: SecretStore,
        capacity: Callable[[], tuple[float, int]],
        poke: Callable[[Sequence[JobRecord]], None],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.secrets = secrets
        #: the most one job may ask for (the service's, detected once)
        self.capacity = capacity
        #: tells the scheduler about the records inserted
        self.poke = poke

    def resolve(
        self, spec: JobSpec | dict[str, Any], definition: str | None = None
    ) -> tuple[JobSpec, str | None]:
        """Apply a definition's template (if any) and validate."""
        if definition is None:
            return (spec if isinstance(spec, JobSpec) else parse_spec(spec)), None
        name, _, version_text = definition.partition(":")
        if version_text and not version_text.isdigit():
            raise UserError(
                f"bad definition reference {definition!r}",
                where="definition",
                hint="use NAME or NAME:VERSION",
            )
        with self.engine.connect() as conn:
            row = definition_row(conn, name, int(version_text) if version_text else None)
        if row is None:
            raise NotFoundError(
                f"no job definition {definition!r}", where="definition", hint="see `freight definitions`"
            )
        overrides = spec.model_dump(exclude_unset=True) if isinstance(spec, JobSpec) else dict(spec)
        merged = merge_overrides(json.loads(row["spec"]), overrides)
        return parse_spec(merged, source=f"definition {name}:{row['version']}"), f"{name}:{row['version']}"

    def pin_image(self, spec: JobSpec) -> JobSpec:
        """An image job runs one exact image: its name is pinned to a digest before the job is
        placed, and a name that resolves to nothing is a UserError now rather than a failed attempt.
        It asks podman or the registry: never call it holding the store's write lock."""
        if spec.image is None:
            return spec
        from freight.runtime.images import pin

        return spec.model_copy(update={"image": pin(spec.image, self.settings)})

    def insert(self, items: Sequence[tuple[JobSpec, str | None]], *, platform: bool = False) -> list[JobView]:
        return self._insert_pinned([(self.pin_image(spec), ref) for spec, ref in items], platform)

    def _insert_pinned(self, items: Items, platform: bool = False) -> list[JobView]:
        now = time.time()
        fresh: list[JobRecord] = []
        try:
            with self.engine.begin() as conn:
                views = self._insert_in(conn, items, now, fresh, platform)
        except IntegrityError:
            # Two submitters raced on one idempotency key; the other's insert won. Read theirs.
            fresh.clear()
            with self.engine.begin() as conn:
                views = self._insert_in(conn, items, now, fresh, platform)
        self.poke(fresh)
        return views

    def submit_groups(
        self, groups: Sequence[Sequence[tuple[JobSpec, str | None]]]
    ) -> list[list[JobView] | FreightError]:
        """Group commit: many independent submissions (each a list of (spec, pinned definition), their
        images already pinned: `pin_image`) in one transaction. Each group is all or nothing and its
        answer is its views or the error that refused it; one bad group never refuses the others. A
        group's checks all run before it writes, so a refused group leaves nothing behind in the
        shared transaction. A store that fails the whole transaction raises (nothing was written)."""
        fresh: list[JobRecord] = []
        now = time.time()
        try:
            with self.engine.begin() as conn:
                results = self._insert_groups(conn, groups, now, fresh)
        except IntegrityError:
            # Another submitter raced on an idempotency key: nothing of this batch was written.
            # Each group alone, as submit() would (its retry reads the winner's job).
            return [self._insert_alone(items) for items in groups]
        self.poke(fresh)
        return results

    def _insert_alone(self, items: Items) -> list[JobView] | FreightError:
        """One group in a transaction of its own; what fails it answers this group only (the groups
        before it are committed: their waiters must hear their jobs, not this group's error)."""
        try:
            return self._insert_pinned(items)
        except FreightError as exc:
            return exc
        except Exception as exc:  # the store refused this group's own transaction
            first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["failed"])[0]
            log.warning("a submission failed alone after a group commit's conflict: %s", first)
            return TransientError(
                "the store failed this submission; retry it (with an idempotency key a retry never "
                "makes a second job)"
            )

    def _insert_in(
        self,
        conn: Any,
        items: Sequence[tuple[JobSpec, str | None]],
        now: float,
        fresh: list[JobRecord],
        platform: bool = False,
    ) -> list[JobView]:
        """Insert what is new; `fresh` receives the records inserted."""
        (result,) = self._insert_groups(conn, [items], now, fresh, platform)
        if isinstance(result, FreightError):
            raise result
        return result

    def _insert_groups(
        self,
        conn: Any,
        groups: Sequence[Sequence[tuple[JobSpec, str | None]]],
        now: float,
        fresh: list[JobRecord],
        platform: bool = False,
    ) -> list[list[JobView] | FreightError]:
        """Check every group, then write the accepted ones together: one read each of the queues,
        the secrets and the idempotency keys, one insert per table and one explanation for all, so a
        group commit costs little more than one submit. A group its checks refuse is answered with
        its error and writes nothing. `fresh` receives the records inserted."""
        every = [spec for group in groups for spec, _ in group]
        rows = conn.execute(select(queues).where(queues.c.name.in_({s.queue for s in every}))).all()
        policies = {r.name: QueuePolicy.from_row(r._mapping) for r in rows}
        missing = set(self.secrets.missing(conn, {v for s in every for v in s.secrets.values()}))
        keys = {s.idempotency_key for s in every if s.idempotency_key}
        seen: dict[str, JobRecord] = {}
        if keys:
            found = conn.execute(select(jobs).where(jobs.c.idempotency_key.in_(keys)))
            seen = {r.idempotency_key: JobRecord.from_row(r) for r in found}
        out: list[list[JobView] | FreightError] = []
        accepted: list[JobRecord] = []
        accepted_ids: set[str] = set()
        for group in groups:
            try:
                views, records = self._check_group(
                    conn, group, now, policies, missing, seen, accepted_ids, platform
                )
            except FreightError as exc:
                out.append(exc)
                continue
            out.append(views)
            accepted += records
            accepted_ids.update(r.id for r in records)
            seen.update({r.idempotency_key: r for r in records if r.idempotency_key})
        if accepted:
            self._write(conn, accepted, {r.name for r in rows}, now)
            fresh += accepted
        said = iter(explained(conn, [v for views in out if isinstance(views, list) for v in views]))
        return [r if isinstance(r, FreightError) else [next(said) for _ in r] for r in out]

    def _check_group(
        self,
        conn: Any,
        group: Sequence[tuple[JobSpec, str | None]],
        now: float,
        policies: Mapping[str, QueuePolicy],
        missing_secrets: set[str],
        seen: Mapping[str, JobRecord],
        accepted_ids: set[str],
        platform: bool,
    ) -> tuple[list[JobView], list[JobRecord]]:
        """One submission's views and new records, or the error that refuses it (nothing written)."""
        views: list[JobView] = []
        records: list[JobRecord] = []
        mine: dict[str, JobRecord] = {}
        for index, (given, ref) in enumerate(group):
            where = "spec" if len(group) == 1 else f"jobs.{index}"
            policy = policies.get(given.queue) or QueuePolicy(given.queue)
            spec = admit(given, policy, self.capacity(), platform=platform, where=where)
            absent = sorted(set(given.secrets.values()) & missing_secrets)
            if absent:
                env_name = next(k for k, v in given.secrets.items() if v == absent[0])
                raise NotFoundError(
                    f"no secret {absent[0]!r}",
                    where=f"{where}: secrets.{env_name}",
                    hint=f"store it first: `freight secrets set {absent[0]}` (value on stdin)",
                )
            key = spec.idempotency_key
            prior = (mine.get(key) or seen.get(key)) if key else None
            if prior is not None:
                if prior.spec != spec:
                    raise ConflictError(
                        f"idempotency key {key!r} was already used for job {prior.id} with a different spec",
                        where="idempotency_key",
                        hint="use a new key for a different job",
                    )
                views.append(prior.view())
                continue
            record = record_from_spec(spec, now=now, definition=ref)
            records.append(record)
            views.append(record.view())
            if key:
                mine[key] = record
        if any(r.spec.depends_on for r in records):  # (copying the batch's ids costs, so only then)
            self._check_dependencies(conn, records, accepted_ids | {r.id for r in records})
        return views, records

    def _write(self, conn: Any, fresh: list[JobRecord], known_queues: set[str], now: float) -> None:
        """Insert accepted records with their queues (if new), dependencies and first events."""
        ensure_queues(conn, {r.queue for r in fresh} - known_queues, now)
        conn.execute(insert(jobs), [r.insert_params() for r in fresh])
        dep_rows = [
            {"job_id": r.id, "depends_on": d.job, "condition": d.condition}
            for r in fresh
            for d in r.spec.depends_on
        ]
        if dep_rows:
            conn.execute(insert(dependencies), dep_rows)
        label_rows = [{"job_id": r.id, "key": k, "value": v} for r in fresh for k, v in r.labels.items()]
        if label_rows:
            conn.execute(insert(job_labels), label_rows)
        conn.execute(
            insert(events),
            [
                {
                    "job_id": r.id,
                    "attempt": None,
                    "from_state": None,
                    "to_state": "queued",
                    "at": now,
                    "detail": "submitted",
                }
                for r in fresh
            ],
        )

    def _check_dependencies(self, conn: Any, fresh: list[JobRecord], known: set[str]) -> None:
        wanted = {d.job for r in fresh for d in r.spec.depends_on} - known
        found = (
            {r.id for r in conn.execute(select(jobs.c.id).where(jobs.c.id.in_(wanted)))} if wanted else set()
        )
        for record in fresh:
            for index, dep in enumerate(record.spec.depends_on):
                if dep.job not in known and dep.job not in found:
                    raise NotFoundError(f"no job {dep.job!r} to depend on", where=f"depends_on.{index}.job")
                if dep.job == record.id:
                    raise UserError("a job cannot depend on itself", where=f"depends_on.{index}.job")


def ensure_queues(conn: Any, names: set[str], now: float) -> None:
    if not names:
        return
    have = {r.name for r in conn.execute(select(queues.c.name).where(queues.c.name.in_(names)))}
    missing = names - have
    if missing:
        conn.execute(
            insert(queues),
            [
                {"name": n, "priority": 0, "weight": 1.0, "paused": False, "created_at": now}
                for n in sorted(missing)
            ],
        )

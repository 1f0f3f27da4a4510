"""Tables of the job platform. Times are float seconds since the epoch (portable and exact enough)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200)),
    Column("queue", String(64), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),
    Column("spec", Text, nullable=False),
    Column("definition", String(200)),
    Column("labels", Text, nullable=False, default="{}"),
    Column("idempotency_key", String(200)),
    Column("submitted_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("exit_code", Integer),
    Column("reason", Text),
    #: earliest time the next attempt may start (retry backoff)
    Column("not_before", Float),
    #: set by a cancel request against a starting/running job; the scheduler acts on it
    Column("cancel_requested", Boolean, nullable=False, default=False),
    UniqueConstraint("idempotency_key", name="uq_jobs_idempotency_key"),
)
# Listing is newest first by id, under a filter: these serve `WHERE ... ORDER BY id DESC LIMIT n`
# (keyset pages) from the index alone, however many jobs the store holds (migration 0017).
Index("ix_jobs_state_id", jobs.c.state, jobs.c.id)
Index("ix_jobs_queue_state_id", jobs.c.queue, jobs.c.state, jobs.c.id)
Index("ix_jobs_queue_id", jobs.c.queue, jobs.c.id)

#: a job's labels, one row each, so a label filter is an index lookup (jobs.labels keeps the JSON)
job_labels = Table(
    "job_labels",
    metadata,
    Column("job_id", String(32), ForeignKey("jobs.id"), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(500), nullable=False),
)
Index("ix_job_labels_key_value_job", job_labels.c.key, job_labels.c.value, job_labels.c.job_id)

attempts = Table(
    "attempts",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("job_id", String(32), ForeignKey("jobs.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("handle", Text),
    #: why the scheduler stopped it ("timeout" or "cancel"), written before the signal is sent
    Column("stop_reason", String(16)),
    Column("node", String(200)),
    Column("cpus", Float, nullable=False),
    Column("memory", BigInteger, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("exit_code", Integer),
    Column("signal", Integer),
    Column("oom_killed", Boolean, nullable=False, default=False),
    Column("peak_memory", BigInteger),
    Column("cpu_seconds", Float),
    Column("error", Text),
    Column("log_path", Text),
    #: when the log was copied to the object store (logs/<id[:8]>/<id>.<n>.log); NULL: not yet
    Column("log_archived_at", Float),
    UniqueConstraint("job_id", "number", name="uq_attempts_job_number"),
)
Index("ix_attempts_state", attempts.c.state)

dependencies = Table(
    "dependencies",
    metadata,
    Column("job_id", String(32), ForeignKey("jobs.id"), primary_key=True),
    Column("depends_on", String(32), ForeignKey("jobs.id"), primary_key=True),
    Column("condition", String(16), nullable=False),
)
Index("ix_dependencies_depends_on", dependencies.c.depends_on)

definitions = Table(
    "definitions",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec", Text, nullable=False),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
)

queues = Table(
    "queues",
    metadata,
    Column("name", String(64), primary_key=True),
    #: queues of higher priority are served first; weights share capacity among equals
    Column("priority", Integer, nullable=False, default=0),
    Column("weight", Float, nullable=False, default=1.0),
    Column("paused", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    #: an admin let this queue's jobs run as the server's user (spec `user: root`)
    Column("allow_root", Boolean, nullable=False, default=False),
    #: an admin let this queue's jobs start from the server's environment (spec `inherit_env: true`)
    Column("allow_inherit_env", Boolean, nullable=False, default=False),
    #: the most one job of this queue may ask for (NULL: the node's capacity)
    Column("max_cpus", Float),
    Column("max_memory", BigInteger),
    #: what a job of this queue gets when its spec does not say (NULL: the spec's defaults)
    Column("default_cpus", Float),
    Column("default_memory", BigInteger),
)

events = Table(
    "events",
    metadata,
    # SQLite's rowid is 64-bit only as INTEGER PRIMARY KEY; PostgreSQL needs BIGINT for the same range
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("job_id", String(32), nullable=False),
    Column("attempt", Integer),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("detail", Text),
    # AUTOINCREMENT: SQLite would otherwise hand out max(id) + 1, an id followers already read past
    # once a purge deleted the newest events (migration 0018)
    sqlite_autoincrement=True,
)
Index("ix_events_job", events.c.job_id)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(200), nullable=False),
    #: by the store's clock (never a host's: hosts' clocks differ), seconds since the epoch
    Column("expires_at", Float, nullable=False),
    #: fencing token: goes up by one each time the lease changes hands; a holder's writes check it
    Column("token", BigInteger, nullable=False, server_default="0"),
)

#: what the autoscaler was asked for and what the cluster did: "request" (a new shape asked of Ray),
#: "node_added", "node_removed"; shown on the capacity page and in GET /api/v1/capacity
scaling_events = Table(
    "scaling_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    #: the node concerned (node_added / node_removed)
    Column("node", String(200)),
    #: the shape asked for (request): bundles, cpus, memory in all
    Column("bundles", Integer),
    Column("cpus", Float),
    Column("memory", BigInteger),
    #: alive nodes after the event
    Column("nodes", Integer),
    Column("detail", Text),
)
Index("ix_scaling_events_at", scaling_events.c.at)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    #: the value, encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with the key of freight.secrets
    Column("value", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    #: short public id, shown in `freight tokens ls` and used to revoke
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    #: sha256 of the secret; the secret itself is shown once and never stored
    Column("secret_hash", String(64), nullable=False),
    #: JSON list of queue names this token may use; NULL means every queue
    Column("queues", Text),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    UniqueConstraint("secret_hash", name="uq_tokens_secret_hash"),
)

# --- builds (migration 0003) ---

build_runs = Table(
    "build_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace", String(500), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("status", String(16), nullable=False),
    Column("trigger", String(32), nullable=False, default="cli"),
    Column("commit", String(64)),
    Column("summary", Text, nullable=False),
)

build_task_runs = Table(
    "build_task_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("workspace", String(500), nullable=False),
    Column("task", String(300), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("duration", Float),
    Column("inputs", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_build_task_runs_lookup", "workspace", "task", "id"),
)

build_releases = Table(
    "build_releases",
    metadata,
    Column("app", String(100), primary_key=True),
    Column("id", String(40), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("manifest_key", String(500), nullable=False),
    Column("task_hash", String(64)),
    Column("commit", String(64)),
    Column("files", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    #: the app's image (REGISTRY/NAME@sha256:...) built beside this release, if it ships one
    Column("image", String(500)),
    Index("ix_build_releases_app_created", "app", "created_at"),
)

build_apps = Table(
    "build_apps",
    metadata,
    Column("app", String(100), primary_key=True),
    Column("hosts", Text, nullable=False),
    Column("prefix", String(200), nullable=False),
    Column("spa", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
)

build_current = Table(
    "build_current",
    metadata,
    Column("app", String(100), primary_key=True),
    Column("env", String(64), primary_key=True),
    Column("release_id", String(40), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

build_deployments = Table(
    "build_deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app", String(100), nullable=False),
    Column("env", String(64), nullable=False),
    Column("release_id", String(40), nullable=False),
    Column("previous_release_id", String(40)),
    Column("action", String(16), nullable=False),
    Column("actor", String(200)),
    Column("created_at", Float, nullable=False),
    Index("ix_build_deployments_app_env", "app", "env", "id"),
)

# --- pipelines (migration 0003) ---

runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(100), nullable=False),
    # waiting | running | succeeded | failed | cancelled
    Column("state", String(20), nullable=False),
    Column("spec_path", Text),
    Column("spec_json", Text, nullable=False),
    Column("rerun_of", String(40)),
    Column("run_url", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("error", Text),
    # the run's data interval [start, end) as UNIX times (migration 0011); NULL for older runs
    Column("interval_start", Float),
    Column("interval_end", Float),
    # manual | schedule | backfill
    Column("trigger", String(20)),
    # the notifications sent, comma-separated (failure, success, late): each is sent once
    Column("notified", String(100)),
)
Index("ix_pipeline_runs_pipeline", runs.c.pipeline, runs.c.created_at)
Index("ix_pipeline_runs_interval", runs.c.pipeline, runs.c.interval_start)

step_runs = Table(
    "pipeline_step_runs",
    metadata,
    Column("run_id", String(40), ForeignKey("pipeline_runs.id"), primary_key=True),
    Column("step", String(100), primary_key=True),
    Column("type", String(40), nullable=False),
    # pending | queued | running | succeeded | failed | cancelled | skipped | reused
    Column("state", String(20), nullable=False),
    Column("job_id", String(40)),
    Column("attempts", Integer),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("rows", BigInteger),
    #: Dataset URL this step's output lives at (another run's, when reused).
    Column("output_url", Text),
    Column("reused_from", String(40)),
    Column("error", Text),
    #: JSON: what the step measured about itself (import, work and total seconds; peak memory).
    Column("metrics", Text),
)

checks = Table(
    "pipeline_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), ForeignKey("pipeline_runs.id"), nullable=False),
    Column("step", String(100), nullable=False),
    Column("check_type", String(40), nullable=False),
    # pass | fail | warn
    Column("status", String(10), nullable=False),
    Column("on_fail", String(10), nullable=False),
    Column("observed", Text),
    Column("expected", Text),
    Column("message", Text),
    Column("at", Float, nullable=False),
)
Index("ix_pipeline_checks_run", checks.c.run_id, checks.c.step)

# --- pipeline schedules (migration 0011) ---

#: Pipelines the server runs on their schedule (`freight pipeline schedule FILE`).
schedules = Table(
    "pipeline_schedules",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("spec_json", Text, nullable=False),
    Column("spec_path", Text),
    Column("base_dir", Text, nullable=False),
    Column("config_path", Text),
    Column("paused", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)


# --- services (migration 0012) ---

#: long-running services (services/): the desired state; replicas are jobs labelled freight.service
services = Table(
    "services",
    metadata,
    Column("name", String(64), primary_key=True),
    #: JSON ServiceSpec, its image pinned to a digest
    Column("spec", Text, nullable=False),
    #: the spec before the last deploy: what rollback returns to
    Column("previous", Text),
    Column("revision", Integer, nullable=False),
    #: deploying | ready | rolled_back | removing
    Column("status", String(16), nullable=False),
    Column("message", Text),
    Column("updated_at", Float, nullable=False),
)

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
Index("ix_jobs_state", jobs.c.state)
Index("ix_jobs_queue_state", jobs.c.queue, jobs.c.state)

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
)
Index("ix_events_job", events.c.job_id)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
)

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

"""The services table: desired state, written by the CLI, read and settled by the controller."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from freight.db.schema import services
from freight.errors import ConflictError, NotFoundError, UserError
from freight.services import claims
from freight.services.spec import NAME, ServiceSpec


@dataclass(frozen=True)
class ServiceRow:
    name: str
    spec: ServiceSpec
    previous: ServiceSpec | None
    revision: int
    status: str
    message: str | None
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec.model_dump(mode="json"),
            "previous": self.previous.model_dump(mode="json") if self.previous else None,
            "revision": self.revision,
            "status": self.status,
            "message": self.message,
            "updated_at": self.updated_at,
        }


def _row(record: Any) -> ServiceRow:
    previous = ServiceSpec.model_validate_json(record.previous) if record.previous else None
    return ServiceRow(
        record.name,
        ServiceSpec.model_validate_json(record.spec),
        previous,
        record.revision,
        record.status,
        record.message,
        record.updated_at,
    )


class ServiceStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[ServiceRow]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(services).order_by(services.c.name))]

    def get(self, name: str) -> ServiceRow:
        with self.engine.connect() as conn:
            record = conn.execute(select(services).where(services.c.name == name)).first()
        if record is None:
            raise NotFoundError(f"no service {name!r}", where="NAME", hint="freight service ls lists them")
        return _row(record)

    def deploy(self, name: str, spec: ServiceSpec) -> ServiceRow:
        """A new revision of `name` (created if new); the controller rolls the replicas to it.
        ConflictError (nothing written) when a host or the prefix is another service's or app's."""
        if not NAME.match(name):
            raise UserError(f"{name!r} is not a service name", where="NAME", hint="use a-z, 0-9 and -")
        now = time.time()
        with claims.claiming(self.engine) as conn:
            claims.check(conn, name, spec)
            record = conn.execute(select(services).where(services.c.name == name)).first()
            if record is None:
                conn.execute(
                    insert(services).values(
                        name=name, spec=spec.model_dump_json(), previous=None, revision=1,
                        status="deploying", message=None, updated_at=now,
                    )
                )  # fmt: skip
            else:
                conn.execute(
                    update(services)
                    .where(services.c.name == name)
                    .values(
                        spec=spec.model_dump_json(), previous=record.spec, revision=record.revision + 1,
                        status="deploying", message=None, updated_at=now,
                    )
                )  # fmt: skip
        return self.get(name)

    def rollback(self, name: str, message: str | None = None) -> ServiceRow:
        """Back to the spec before the last deploy (which becomes the one a rollback returns to).
        Its hosts and prefix are claimed again: ConflictError if someone took one meanwhile. An
        automatic rollback (`message` given) then keeps the current revision's routes instead, so a
        broken rollout is always undone."""
        row = self.get(name)
        if row.previous is None:
            raise UserError(f"service {name} has no earlier revision", where="NAME")
        target = row.previous
        with claims.claiming(self.engine) as conn:
            try:
                claims.check(conn, name, target)
            except ConflictError as exc:
                if message is None:
                    raise
                target = target.model_copy(update={"hosts": row.spec.hosts, "prefix": row.spec.prefix})
                message += f"; kept this revision's routes ({exc})"
            conn.execute(
                update(services)
                .where(services.c.name == name, services.c.revision == row.revision)
                .values(
                    spec=target.model_dump_json(), previous=row.spec.model_dump_json(),
                    revision=row.revision + 1, status="rolled_back" if message else "deploying",
                    message=message, updated_at=time.time(),
                )
            )  # fmt: skip
        return self.get(name)

    def scale(self, name: str, replicas: int) -> ServiceRow:
        row = self.get(name)
        if not 0 <= replicas <= 50:
            raise UserError(f"{replicas} replicas is out of range", where="REPLICAS", hint="give 0 to 50")
        spec = row.spec.model_copy(update={"replicas": replicas})
        with self.engine.begin() as conn:
            conn.execute(
                update(services)
                .where(services.c.name == name)
                .values(spec=spec.model_dump_json(), status="deploying", updated_at=time.time())
            )
        return self.get(name)

    def set_status(self, name: str, status: str, message: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(services)
                .where(services.c.name == name, services.c.status != status)
                .values(status=status, message=message, updated_at=time.time())
            )

    def mark_removing(self, name: str) -> None:
        self.get(name)
        self.set_status(name, "removing")

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(services).where(services.c.name == name))

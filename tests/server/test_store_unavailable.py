"""A SQLite store that stays locked: writes answer 503 with Retry-After, reads still answer, and
/healthz says the store is unavailable until a write commits again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from freight.db.engine import open_engine
from freight.db.schema import queues
from freight.jobs.service import JobService
from freight.server import create_app
from freight.server.tokens import create_token
from tests.server.conftest import Api, TestClient, _settings


def test_a_locked_store_gives_503_with_retry_after(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home", "locked")
    service = JobService.open(settings)
    with TestClient(create_app(service=service)) as client:
        _, admin = create_token(service.engine, "admin", admin=True)
        api = Api(client, service, admin)
        assert client.get("/healthz").status_code == 200
        stuck = open_engine(settings.database_url)  # another process, stuck mid-write
        with stuck.begin() as conn:
            conn.execute(insert(queues).values(name="x", priority=0, weight=1.0, paused=False, created_at=0))
            refused = api.post("/api/v1/jobs", {"command": ["true"]})
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"].isdigit()
            assert "store is busy or unreachable" in refused.json()["message"]
            assert api.get("/api/v1/jobs").status_code == 200  # reads never wait for the writer
            health = client.get("/healthz")
            assert health.status_code == 503 and health.text.startswith("store unavailable: locked")
        assert api.post("/api/v1/jobs", {"command": ["true"]}).status_code == 201
        assert client.get("/healthz").status_code == 200
    service.close()

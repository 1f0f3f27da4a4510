"""The logs endpoint (raw and SSE, as the UI tails it) serves an archived log when the local file is
gone: the bytes the job wrote, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

from freight.config import Settings
from freight.jobs.service import JobService
from freight.jobs.spec import JobSpec
from freight.server import create_app
from freight.server.tokens import create_token
from tests.jobs.test_logarchive import archived_at, wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_api_and_sse_serve_the_archived_log(store_settings: Settings) -> None:
    with JobService.open(replace(store_settings, cpus=2.0, memory=4 << 30)) as svc:
        svc.start_scheduler(poll_interval=0.2)
        shell = "printf 'h\\303\\251llo\\r\\n'; head -c 400000 /dev/zero | tr '\\0' 'y'; printf '\\nend'"
        job_id = svc.submit(JobSpec(shell=shell, resources={"cpus": 0.2, "memory": "64M"})).id
        svc.wait([job_id], timeout=60)
        wait_for(lambda: archived_at(svc, job_id) is not None)
        local = svc.settings.log_path(job_id, 1)
        written = local.read_bytes()
        local.unlink()
        assert written.startswith("héllo\r\n".encode()) and written.endswith(b"\nend")
        with TestClient(create_app(service=svc)) as client:
            _, admin = create_token(svc.engine, "admin", admin=True)
            headers = {"Authorization": f"Bearer {admin}"}
            url = f"/api/v1/jobs/{job_id}/logs"
            assert client.get(url, headers=headers).content == written
            assert client.get(url, params={"follow": True}, headers=headers).content == written
            assert client.get(url, params={"offset": 3}, headers=headers).content == written[3:]
            sse = client.get(url, params={"sse": True, "follow": True}, headers=headers).text
        events = [block for block in sse.split("\n\n") if block.startswith(("id:", "event:"))]
        data = [
            (line.split(": ", 1)[1], json.loads(block.rsplit("data: ", 1)[1]))
            for block in events
            for line in block.splitlines()
            if line.startswith("event:")
        ]
        assert "".join(d["text"] for kind, d in data if kind == "log") == written.decode()
        assert data[-1][0] == "end" and data[-1][1]["state"] == "succeeded"

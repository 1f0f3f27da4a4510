"""freight speaks to Ray with a token and joins no cluster that lets callers in without one (jobs run
on the nodes, with the host's network: they could otherwise drive freight's agents, root there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from freight.errors import UserError
from freight.runtime.ray_auth import private_token_file

#: an open (no token) one-node cluster, then freight's connect to it
OPEN_CLUSTER = """
import os, sys
os.environ["RAY_AUTH_MODE"] = "disabled"
from freight.runtime.ray_cluster import connect, loopback_only
loopback_only()
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
try:
    connect(cluster.address, __import__("pathlib").Path(sys.argv[1]))
    print("JOINED")
except Exception as exc:
    print("REFUSED", exc)
finally:
    cluster.shutdown()
"""


def test_freight_makes_a_private_token_and_refuses_one_others_may_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    made = private_token_file(tmp_path)
    assert made == tmp_path / "ray_auth_token" and (made.stat().st_mode & 0o777) == 0o600
    assert len(made.read_text()) == 64 and private_token_file(tmp_path) == made  # made once
    made.chmod(0o644)
    with pytest.raises(UserError, match="jobs could read it") as err:
        private_token_file(tmp_path)
    assert str(made) in str(err.value) and "chmod 600" in str(err.value)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))  # the operator's: never made
    with pytest.raises(UserError, match="cannot read the Ray token"):
        private_token_file(tmp_path)


@pytest.mark.slow
def test_freight_refuses_a_cluster_that_lets_callers_in_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    done = subprocess.run(
        [sys.executable, "-c", OPEN_CLUSTER, str(tmp_path / "home")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "REFUSED" in done.stdout and "JOINED" not in done.stdout, done.stdout + done.stderr[-2000:]
    assert "lets callers in without a token" in done.stdout and "FREIGHT_RAY_ADDRESS" in done.stdout

"""freight on a Ray cluster: one NodeAgent actor per Ray node, and the Runtime that routes to them.

    scheduler ──ClusterRuntime.start(request, node)──▶ Ray ──▶ NodeAgent on that node ──▶ ShimRuntime
                                                                (cgroup slot, shim, OOM from the cgroup)

Ray carries requests and answers; freight keeps queues, priority, fair share and placement. Agents are
detached, named actors (`freight-agent-<node id>` in the `freight` namespace) pinned to their node with
a hard node-affinity strategy and no CPU of their own, so a restarted server finds the same agents and
the attempts they hold; the attempts themselves run under their shims, not in Ray's worker processes,
so they outlive an agent too (a new agent re-attaches through `recover`).

A node is dead when Ray says so (`ClusterRuntime.node_alive`). A node Ray calls alive whose agent does
not answer within AGENT_ANSWER seconds is listed alive but not `answering` (with the reason): the
scheduler places nothing there and leaves its attempts alone (they run on under their shims), rather
than losing them and running them twice. Ray is imported only here, and only when a cluster is used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from freight.config import Settings, load_settings
from freight.errors import TransientError, UserError
from freight.runtime.agent import NodeAgent, outcome_from_dict
from freight.runtime.base import AttemptRequest, Handle, Outcome, Recovered
from freight.runtime.ray_auth import refuse_open_cluster, use_token

NAMESPACE = "freight"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: seconds the agents have, all asked at once, to answer a look at the nodes (a hung agent costs this)
AGENT_ANSWER = 2.0
#: seconds a first look waits for agents that never answered yet (starting an actor takes seconds)
AGENT_START = 60.0
#: label resources a Ray node advertises become freight node labels: --resources '{"label:zone=eu": 1}'
LABEL_PREFIX = "label:"


@dataclass(frozen=True)
class ClusterNode:
    id: str
    address: str
    cpus: float
    memory: int
    #: Ray's word: the node's raylet is alive
    alive: bool
    labels: dict[str, str] = field(default_factory=dict)
    #: its agent answered this look (a silent agent leaves the node alive, taking no new attempts)
    answering: bool = True
    #: why it is not answering
    reason: str | None = None


def loopback_only() -> None:
    """Keep every Ray process this one starts (a test cluster's raylets, a local head) on 127.0.0.1.

    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when `ray._private.ray_constants` is imported,
    and with it picks the node's address (the host's network address unless it is "0"): setting the
    variable after `import ray` changes nothing for this process. So the variable is set for the
    processes to come, and the constant itself for this one if Ray is imported already."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]


def connect(address: str, home: Path | None = None) -> None:
    """Join the Ray cluster at `address` ("auto" reads RAY_ADDRESS) as a driver in freight's namespace,
    with the cluster's token (runtime/ray_auth.py; `home`: FREIGHT_HOME, else the environment's).
    A cluster that lets callers without the token in is refused: jobs could drive the agents."""
    host = address.removeprefix("ray://").rsplit(":", 1)[0]
    if host in LOOPBACK:
        loopback_only()  # a cluster on this machine only: the driver must use 127.0.0.1 too
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return
    use_token(home if home is not None else load_settings().home)
    import ray

    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, ray.exceptions.AuthenticationError) as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        raise UserError(
            f"cannot join the Ray cluster at {address!r}: {exc}{cause}",
            where="FREIGHT_RAY_ADDRESS",
            hint="start one with `ray start --head` (RAY_AUTH_MODE=token, freight's token: see "
            "docs/operations.md), or give its address (host:6379)",
        ) from None
    try:
        refuse_open_cluster(ray.get_runtime_context().gcs_address)
    except UserError:
        ray.shutdown()
        raise


def _labels(resources: dict[str, float]) -> dict[str, str]:
    out = {}
    for name in resources:
        if name.startswith(LABEL_PREFIX) and "=" in name:
            key, value = name.removeprefix(LABEL_PREFIX).split("=", 1)
            out[key] = value
    return out


class ClusterRuntime:
    """The `Runtime` for a Ray cluster. `start` runs an attempt on the node the scheduler placed it on
    (`node=`); every other call goes to the agent named in the handle."""

    description = "Ray cluster (cgroup isolation on every node, through freight's agent)"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        import ray

        self._ray: Any = ray
        #: the FREIGHT_* settings agents start with: the server's, less its credentials
        self.env = {
            k: v
            for k, v in (env if env is not None else dict(os.environ)).items()
            if k.startswith("FREIGHT_") and k not in {"FREIGHT_TOKEN", "FREIGHT_DATABASE_URL"}
        }
        #: guards the agent table (_agents, _retired, _starting, _held): the scheduler's thread starts
        #: attempts while the autoscaling Scaler's thread retires idle nodes
        self._lock = threading.RLock()
        self._agents: dict[str, Any] = {}
        #: node id -> starts under way there (retire refuses such a node)
        self._starting: dict[str, int] = {}
        #: node id -> attempts started (or re-attached) there and not released yet
        self._held: dict[str, set[str]] = {}
        #: node id -> the `info` question its agent has not answered yet
        self._asking: dict[str, Any] = {}
        #: node id -> what its agent last said of itself (cpus, memory, ...)
        self._info: dict[str, dict[str, Any]] = {}
        #: node id -> the poll its agent has not answered yet
        self._polling: dict[str, Any] = {}
        #: nodes whose agent was let go while idle (retire): Ray counts a node with a live agent as
        #: busy and would never remove it; the agent comes back when the node is used again
        self._retired: set[str] = set()

    @classmethod
    def for_settings(cls, settings: Settings) -> ClusterRuntime:
        """Agents that start with these settings (home, object store, cgroups, isolation, job user,
        run dir) on top of this process's FREIGHT_* environment. The object store is where an agent
        archives the logs of its node's attempts: the server reads them there."""
        env = dict(os.environ)
        env.update(
            FREIGHT_HOME=str(settings.home),
            FREIGHT_OBJECT_STORE=settings.object_store_url,
            FREIGHT_CGROUP_PARENT=settings.cgroup_parent,
            FREIGHT_ISOLATION=settings.isolation,
            FREIGHT_JOB_USER=settings.job_user,
        )
        if settings.run_dir_override is not None:
            env["FREIGHT_RUN_DIR"] = str(settings.run_dir_override)
        return cls(env)

    # -- nodes -------------------------------------------------------------------------------------

    def nodes(self, starting_wait: float = 0.0) -> list[ClusterNode]:
        """Every node Ray knows, alive or not, with what its agent says it offers. The agents are
        asked all at once and given AGENT_ANSWER seconds in all: a silent agent's node is listed
        alive, not answering, with its last known size. A question still unanswered is not asked
        again (a hung agent does not pile up calls); its answer counts whenever it comes.
        `starting_wait`: up to this many more seconds for agents that never answered yet (a first
        look, before any tick: the agents are being started)."""
        listed = self._ray.nodes()
        # a retired node (its idle agent let go for the autoscaler) is asked nothing: Ray's figures
        alive_ids = {raw["NodeID"] for raw in listed if raw["Alive"] and raw["NodeID"] not in self._retired}
        for node_id in set(self._asking) - alive_ids:  # dead, forgotten or retired: nothing to ask
            self._asking.pop(node_id, None)
            self._info.pop(node_id, None)
        problems: dict[str, str] = {}
        for raw in listed:
            node_id = raw["NodeID"]
            if node_id in alive_ids and node_id not in self._asking:
                try:
                    agent = self.agent(node_id, _labels(raw.get("Resources", {})))
                    self._asking[node_id] = agent.info.remote()
                except Exception as exc:
                    problems[node_id] = f"its agent cannot be started: {exc}"
        refs = list(self._asking.values())
        ready = self._ray.wait(refs, num_returns=len(refs), timeout=AGENT_ANSWER)[0] if refs else []
        answered = set(ready)  # object refs compare (and hash) by their object id
        starting = [r for n, r in self._asking.items() if n not in self._info and r not in answered]
        if starting and starting_wait > 0:
            answered.update(self._ray.wait(starting, num_returns=len(starting), timeout=starting_wait)[0])
        for node_id, ref in list(self._asking.items()):
            if ref in answered:
                del self._asking[node_id]
                problem = self._take_info(node_id, ref)
                if problem is not None:
                    problems[node_id] = problem
            else:
                problems[node_id] = f"its agent did not answer within {AGENT_ANSWER:g} s"
        return [self._node(raw, problems.get(raw["NodeID"])) for raw in listed]

    def _take_info(self, node_id: str, ref: Any) -> str | None:
        """Keep what the agent answered; the problem, if its answer is an error. An agent that died
        while its node lives (killed, crashed) is replaced: its attempts run on under their shims,
        and the new one answers a later look."""
        try:
            self._info[node_id] = self._ray.get(ref, timeout=0)
        except self._ray.exceptions.RayActorError:
            if node_id in self._retired:
                return None  # let go on purpose (retire): the node is placeable on Ray's figures
            with self._lock:
                self._agents.pop(node_id, None)
            with contextlib.suppress(Exception):
                self.agent(node_id)
            return "its agent died; a new one is starting"
        except Exception as exc:
            return f"its agent failed to answer: {exc}"
        return None

    def _node(self, raw: dict[str, Any], problem: str | None) -> ClusterNode:
        node_id = raw["NodeID"]
        resources = raw.get("Resources", {})
        cpus, memory = float(resources.get("CPU", 0.0)), int(resources.get("memory", 0))
        info = self._info.get(node_id)
        if info is not None:
            # what the operator gave the node (ray start --num-cpus/--memory) when it is less than
            # the machine: several raylets may share one machine
            cpus = min(cpus, float(info["cpus"])) if cpus else float(info["cpus"])
            memory = min(memory, int(info["memory"])) if memory else int(info["memory"])
        alive = bool(raw["Alive"])
        return ClusterNode(
            node_id,
            raw.get("NodeManagerAddress", ""),
            cpus,
            memory,
            alive,
            _labels(resources),
            answering=alive and problem is None,
            reason=problem if alive else None,
        )

    def agent(self, node_id: str, labels: dict[str, str] | None = None) -> Any:
        """The node's agent, started on first use (or found again after a server restart). `labels`
        are the node's when the caller has them already; else they are looked up."""
        with self._lock:
            return self._agent(node_id, labels)

    def _agent(self, node_id: str, labels: dict[str, str] | None) -> Any:
        handle = self._agents.get(node_id)
        if handle is not None:
            return handle
        self._retired.discard(node_id)  # the node is used again (a job, a log read): its agent returns
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if labels is None:
            raw = self._ray.nodes()
            labels = next((_labels(n.get("Resources", {})) for n in raw if n["NodeID"] == node_id), {})
        actor = self._ray.remote(NodeAgent).options(
            name=f"freight-agent-{node_id}",
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=16,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        )
        handle = actor.remote(self.env, node_id, labels)
        self._agents[node_id] = handle
        return handle

    def retire(self, node_id: str) -> bool:
        """Let an idle node's agent go, so the autoscaler may remove the node: Ray counts a node
        with a live agent as busy (measured: such nodes stayed; once their agents were killed they
        went in 3.5 s). For nodes that run no attempt; the node stays listed (with Ray's figures)
        and placeable, and its agent starts again when it is used. Idempotent. A node with an
        attempt, or a start under way (the scheduler placed a job there meanwhile), is refused:
        False. Under the agent table's lock, so a start waits for the retire and gets a new agent."""
        with self._lock:
            if self._starting.get(node_id) or self._held.get(node_id):
                return False
            if node_id in self._retired:
                return True
            self._retired.add(node_id)
            self._asking.pop(node_id, None)
            handle = self._agents.pop(node_id, None)
            with contextlib.suppress(Exception):  # gone already: nothing to let go
                if handle is None:
                    handle = self._ray.get_actor(f"freight-agent-{node_id}", namespace=NAMESPACE)
                self._ray.kill(handle, no_restart=True)
            return True

    def _hold(self, node: str, attempt_id: str) -> None:
        with self._lock:
            self._held.setdefault(node, set()).add(attempt_id)

    def node_alive(self, node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n["Alive"] for n in self._ray.nodes())

    # -- Runtime -----------------------------------------------------------------------------------

    def start(self, request: AttemptRequest, node: str | None = None) -> Handle:
        node = node or request.node
        if node is None:
            raise UserError(f"attempt {request.attempt_id} has no node", hint="place it first")
        payload = {**asdict(request), "log_path": str(request.log_path)}
        with self._lock:  # a retire of this node now is refused until the start is over
            self._starting[node] = self._starting.get(node, 0) + 1
            try:
                ref = self.agent(node).start.remote(payload)
            except BaseException:
                self._started(node, None)
                raise
        try:
            text = self._ray.get(ref, timeout=60)
        except self._ray.exceptions.RayError as exc:
            self._started(node, None)
            raise TransientError(
                f"node {node[:12]} could not start attempt {request.attempt_id}: {exc}"
            ) from exc
        except BaseException:
            self._started(node, None)
            raise
        self._started(node, request.attempt_id)
        handle = Handle.from_json(text)
        extra = {**handle.extra, "node": node, "log_path": str(request.log_path)}
        return Handle(**{**asdict(handle), "extra": extra})

    def _started(self, node: str, attempt_id: str | None) -> None:
        with self._lock:
            left = self._starting.get(node, 1) - 1
            if left > 0:
                self._starting[node] = left
            else:
                self._starting.pop(node, None)
            if attempt_id is not None:
                self._held.setdefault(node, set()).add(attempt_id)

    def _call(self, handle: Handle, method: str, *args: Any, wait: float | None = 60.0) -> Any:
        """Ask the attempt's node's agent; `wait`: seconds for its answer (None: as long as it takes).
        An agent that died meanwhile is replaced, and the call asked again of the new one."""
        node = handle.extra["node"]
        try:
            return self._ray.get(getattr(self.agent(node), method).remote(*args), timeout=wait)
        except self._ray.exceptions.GetTimeoutError:
            raise TransientError(f"node {node[:12]} did not answer within {wait or 0:g} s") from None
        except self._ray.exceptions.RayActorError:
            if not self._replace_agent(node):
                raise
        # the new agent first re-attaches to the attempt (its shim kept running), then answers
        self._ray.get(self.agent(node).recover.remote(handle.to_json()), timeout=60)
        return self._ray.get(getattr(self.agent(node), method).remote(*args), timeout=wait)

    def _replace_agent(self, node: str) -> bool:
        """The node's agent died (the node may live on): forget it, and start another if the node is
        alive. The attempts it ran keep running under their shims; the new agent adopts them."""
        with self._lock:
            self._agents.pop(node, None)
        if not self.node_alive(node):
            return False
        self.agent(node)
        return True

    def poll_many(self, handles: list[Handle]) -> dict[str, Outcome | None]:
        """Poll many attempts with one request per node (not one per attempt), all nodes at once,
        waiting AGENT_ANSWER seconds in all: attempt id -> its outcome, or None while it runs. A node
        that does not answer in time leaves its attempts out, and is not asked again until it has
        answered (a hung agent does not pile up calls, nor hold the tick)."""
        by_node: dict[str, list[Handle]] = {}
        for handle in handles:
            by_node.setdefault(handle.extra["node"], []).append(handle)
        for node, group in by_node.items():
            if node in self._polling:
                continue
            try:
                self._polling[node] = self.agent(node).poll.remote([h.to_json() for h in group])
            except Exception:
                continue
        refs = list(self._polling.values())
        ready = set(self._ray.wait(refs, num_returns=len(refs), timeout=AGENT_ANSWER)[0]) if refs else set()
        found: dict[str, Outcome | None] = {}
        for node, ref in list(self._polling.items()):
            if ref not in ready:
                continue
            del self._polling[node]
            try:
                answer = self._ray.get(ref, timeout=0)
            except self._ray.exceptions.RayError:
                continue
            found.update({k: outcome_from_dict(v) if v is not None else None for k, v in answer.items()})
        return found

    def poll(self, handle: Handle) -> Outcome | None:
        found = self._call(handle, "poll", [handle.to_json()])[handle.attempt_id]
        return outcome_from_dict(found) if found is not None else None

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        # a long poll: Ray waits as long as the agent does, plus a margin (not a fixed 60 s)
        wait = None if timeout is None else timeout + 60.0
        found = self._call(handle, "wait", handle.to_json(), timeout, wait=wait)
        return outcome_from_dict(found) if found is not None else None

    def signal(self, handle: Handle, signum: int) -> None:
        self._call(handle, "signal", handle.to_json(), signum)

    def terminate(self, handle: Handle) -> None:
        self._call(handle, "terminate", handle.to_json())

    def kill(self, handle: Handle) -> None:
        self._call(handle, "kill", handle.to_json())

    def recover(self, handle: Handle) -> Outcome | Recovered:
        if not self.node_alive(handle.extra["node"]):
            return Recovered.VANISHED
        found = self._call(handle, "recover", handle.to_json())
        self._hold(handle.extra["node"], handle.attempt_id)
        return Recovered(found) if isinstance(found, str) else outcome_from_dict(found)

    def release(self, handle: Handle) -> None:
        # the node archives the attempt's log as it lets go of it (this server may not see its disk)
        self._call(handle, "release", handle.to_json(), handle.extra.get("log_path"))
        with self._lock:
            self._held.get(handle.extra["node"], set()).discard(handle.attempt_id)

    def fileno(self, handle: Handle) -> int | None:
        return None  # exits are learnt by polling the agents

    def usage(self, handle: Handle) -> tuple[int | None, float | None]:
        # an API thread asks: a hung agent costs AGENT_ANSWER seconds, then "did not answer"
        memory, cpu = self._call(handle, "usage", handle.to_json(), wait=AGENT_ANSWER)
        return memory, cpu

    def read_log(self, handle: Handle, path: str, offset: int = 0) -> bytes:
        data: bytes = self._call(handle, "read_log", path, offset, wait=AGENT_ANSWER)
        return data

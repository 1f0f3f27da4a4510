"""Ray's side of autoscaling: hand freight's demand to the Ray autoscaler, and read the nodes it has.

`request_resources(bundles=...)` replaces the previous request: the autoscaler grows the cluster until
all the bundles fit at once (bypassing its normal upscaling speed) and, once they no longer need a
node, lets it go after the cluster's `idle_timeout_minutes`. Ray is imported only here.
"""

from __future__ import annotations

from typing import Any

from freight.runtime.ray_cluster import ClusterNode, connect


class RayAutoscaler:
    """Talks to the autoscaler of the Ray cluster at `address` (joined on first use)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.requests = 0

    def request(self, bundles: list[dict[str, float]]) -> None:
        connect(self.address)
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=bundles)
        self.requests += 1

    def nodes(self) -> list[ClusterNode]:
        """The cluster's alive nodes as Ray counts them (no agent asked: cheap, for the scaler)."""
        connect(self.address)
        import ray

        raw_nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        return [_node(raw) for raw in raw_nodes if raw["Alive"]]


def _node(raw: dict[str, Any]) -> ClusterNode:
    resources = raw.get("Resources", {})
    return ClusterNode(
        str(raw["NodeID"]),
        str(raw.get("NodeManagerAddress", "")),
        float(resources.get("CPU", 0.0)),
        int(resources.get("memory", 0)),
        alive=True,
    )

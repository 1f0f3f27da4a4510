"""Mark in Ray the nodes that run freight jobs, so the autoscaler never removes a busy node.

Ray's autoscaler removes a node once no *Ray* resources are in use on it for its idle timeout; freight's
jobs run under the node's agent (an actor that holds no CPU), so to Ray a node full of freight jobs is
idle. While a node runs at least one freight attempt, freight keeps a tiny placement group pinned to
it (one bundle of HOLD_CPU, label selector `ray.io/node-id`): the node is in use, and the autoscaler
picks an empty node when the demand falls. The groups are detached and named
`freight-busy-<node id>`, so a new scheduler (after a restart or a failover) finds and reconciles them.

One Ray call per node that becomes busy or idle (not per job), made on the scaler's thread.
"""

from __future__ import annotations

import contextlib
from typing import Any

from freight.runtime.ray_cluster import connect

PREFIX = "freight-busy-"
#: what a hold reserves: enough to make the node "in use", too little to keep anything off it
HOLD_CPU = 0.001
NODE_ID_LABEL = "ray.io/node-id"


class NodeHolds:
    def __init__(self, address: str) -> None:
        self.address = address
        #: the nodes held now; None until read back from Ray (groups a previous scheduler left)
        self._held: set[str] | None = None

    def sync(self, busy: set[str]) -> None:
        """Hold exactly the nodes in `busy`."""
        connect(self.address)
        held = self._existing() if self._held is None else self._held
        for node in sorted(busy - held):
            self._hold(node)
        for node in sorted(held - busy):
            self._free(node)
        self._held = set(busy)

    @property
    def held(self) -> set[str]:
        return set(self._held or ())

    def _hold(self, node: str) -> None:
        from ray.util.placement_group import placement_group

        placement_group(
            [{"CPU": HOLD_CPU}],
            strategy="STRICT_PACK",
            name=PREFIX + node,
            lifetime="detached",
            bundle_label_selector=[{NODE_ID_LABEL: node}],
        )

    def _free(self, node: str) -> None:
        from ray.util import get_placement_group, remove_placement_group

        with contextlib.suppress(ValueError):  # gone already (removed by hand, or its node died)
            remove_placement_group(get_placement_group(PREFIX + node))

    def _existing(self) -> set[str]:
        from ray.util.placement_group import placement_group_table

        table: dict[str, Any] = placement_group_table()
        return {
            str(row["name"]).removeprefix(PREFIX)
            for row in table.values()
            if str(row.get("name", "")).startswith(PREFIX) and row.get("state") != "REMOVED"
        }

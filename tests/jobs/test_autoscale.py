"""The autoscaling decision as plain data: demand in, the shape to ask Ray for out."""

from __future__ import annotations

import pytest

from freight.errors import UserError
from freight.jobs.autoscale import AutoscaleSettings, Demand, Shape, autoscale_settings, plan_scale
from freight.jobs.placement import Node

G = 1 << 30
ON = AutoscaleSettings(enabled=True, node_cpus=2, node_memory=4 * G, cooldown=30)
ONE_NODE = [Node("head", 1, 2 * G)]


def test_jobs_that_fit_nowhere_now_become_bundles() -> None:
    waiting = [Demand(1, G), Demand(1, G), Demand(1, G)]
    plan = plan_scale([], waiting, ONE_NODE, Shape(), now=100, settings=ON)
    # the first fits on the head node, two wait for new nodes; all three are in the shape (Ray fits
    # it onto the whole cluster: the head's room must not count for the other two)
    assert plan.changed and plan.unplaced == 2 and plan.unfit == 0
    assert plan.shape.ray_bundles() == [{"CPU": 1, "memory": float(G)}] * 3
    assert plan.shape.ray_bundles(memory=False) == [{"CPU": 1}] * 3
    assert "2 jobs waiting" in plan.reason


def test_running_jobs_are_in_the_shape_so_their_nodes_are_kept() -> None:
    busy = [Node("head", 1, 2 * G, used_cpus=1, used_memory=G)]
    plan = plan_scale([Demand(1, G)], [Demand(1, G)], busy, Shape(), now=1, settings=ON)
    assert len(plan.shape.bundles) == 2 and plan.unplaced == 1


def test_without_autoscaling_a_job_that_fits_a_busy_node_is_still_demand() -> None:
    busy = [Node("big", 8, 16 * G, used_cpus=8)]
    plan = plan_scale([], [Demand(4, G), Demand(16, G)], busy, Shape(), now=1, settings=AutoscaleSettings())
    assert plan.unplaced == 1 and plan.unfit == 1


def test_a_job_bigger_than_any_node_that_could_be_added_is_not_asked_for() -> None:
    plan = plan_scale([], [Demand(4, G), Demand(1, 8 * G)], ONE_NODE, Shape(), now=1, settings=ON)
    assert plan.unfit == 2 and plan.shape.bundles == () and not plan.changed
    assert ON.could_grow_for(Demand(2, 4 * G)) and not ON.could_grow_for(Demand(2.5, G))
    assert not AutoscaleSettings().could_grow_for(Demand(0.1, 1))  # off: never


def test_the_same_demand_changes_nothing_and_keeps_the_cooldown_fresh() -> None:
    first = plan_scale([], [Demand(1, G)] * 2, ONE_NODE, Shape(), now=10, settings=ON)
    again = plan_scale([], [Demand(1, G)] * 2, ONE_NODE, first.shape, now=20, settings=ON)
    assert not again.changed and again.shape.bundles == first.shape.bundles and again.shape.since == 20


def test_a_smaller_shape_waits_out_the_cooldown() -> None:
    grown = plan_scale([], [Demand(1, G)] * 3, ONE_NODE, Shape(), now=0, settings=ON).shape
    early = plan_scale([], [], ONE_NODE, grown, now=29, settings=ON)
    assert not early.changed and early.shape == grown and "cooling down" in early.reason
    late = plan_scale([], [], ONE_NODE, grown, now=30, settings=ON)
    assert late.changed and late.shape.bundles == () and "demand fell" in late.reason


def test_growth_is_asked_for_at_once_even_during_a_cooldown() -> None:
    grown = plan_scale([], [Demand(1, G)] * 2, ONE_NODE, Shape(), now=0, settings=ON).shape
    more = plan_scale([], [Demand(1, G)] * 4, ONE_NODE, grown, now=1, settings=ON)
    assert more.changed and len(more.shape.bundles) == 4


def test_the_request_is_capped_largest_first() -> None:
    capped = AutoscaleSettings(enabled=True, node_cpus=2, node_memory=4 * G, max_bundles=2)
    waiting = [Demand(0.5, G), Demand(2, G), Demand(1, G), Demand(0.25, G)]
    plan = plan_scale([], waiting, [], Shape(), now=0, settings=capped)
    assert [d.cpus for d in plan.shape.bundles] == [2, 1] and plan.unplaced == 4


def test_settings_from_the_environment() -> None:
    assert not autoscale_settings({}).enabled
    got = autoscale_settings(
        {
            "FREIGHT_AUTOSCALE": "on",
            "FREIGHT_AUTOSCALE_NODE_CPUS": "4",
            "FREIGHT_AUTOSCALE_NODE_MEMORY": "16G",
            "FREIGHT_AUTOSCALE_COOLDOWN": "5",
            "FREIGHT_AUTOSCALE_MAX_BUNDLES": "50",
        }
    )
    assert got == AutoscaleSettings(True, 4.0, 16 * G, 5.0, 50)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"FREIGHT_AUTOSCALE": "maybe"}, "FREIGHT_AUTOSCALE"),
        ({"FREIGHT_AUTOSCALE": "on"}, "FREIGHT_AUTOSCALE_NODE_CPUS"),
        ({"FREIGHT_AUTOSCALE_NODE_MEMORY": "lots"}, "FREIGHT_AUTOSCALE_NODE_MEMORY"),
        ({"FREIGHT_AUTOSCALE_COOLDOWN": "-1"}, "FREIGHT_AUTOSCALE_COOLDOWN"),
        ({"FREIGHT_AUTOSCALE_MAX_BUNDLES": "x"}, "FREIGHT_AUTOSCALE_MAX_BUNDLES"),
    ],
)
def test_a_bad_setting_names_its_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(UserError) as err:
        autoscale_settings(env)
    assert err.value.where == field

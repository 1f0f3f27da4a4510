"""stable_order: dependencies first, ties broken by the given order, cycles refused (never a hang)."""

from __future__ import annotations

import graphlib

import pytest

from freight.toposort import stable_order


def test_dependencies_come_first_and_ties_keep_the_given_order() -> None:
    deps = {"c": ["a"], "b": ["c"], "d": []}
    assert stable_order(["b", "c", "a", "d"], deps) == ["a", "c", "b", "d"]
    assert stable_order(["d", "a", "b", "c"], deps) == ["d", "a", "c", "b"]


def test_a_cycle_is_refused_with_its_nodes() -> None:
    with pytest.raises(graphlib.CycleError) as caught:
        stable_order(["a", "b", "c"], {"a": ["b"], "b": ["a"], "c": []})
    assert set(caught.value.args[1]) == {"a", "b"}


def test_a_long_chain_is_linear_not_quadratic() -> None:
    names = [f"s{i}" for i in range(20_000)]
    deps = {names[i]: [names[i - 1]] for i in range(1, len(names))}
    assert stable_order(names[::-1], deps) == names

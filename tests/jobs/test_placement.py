from freight.jobs.placement import Node, Request, place


def test_fits_and_best_fit_prefers_fuller_node() -> None:
    nodes = [Node("big", 8, 16 << 30), Node("small", 2, 4 << 30, used_cpus=1, used_memory=1 << 30)]
    assert place(Request(1, 1 << 30), nodes).node == "small"


def test_rejections_say_why() -> None:
    decision = place(Request(2, 1 << 30), [Node("n1", 2, 4 << 30, used_cpus=1.5)])
    assert decision.node is None and not decision.impossible
    assert decision.rejected["n1"] == "needs 2 cpus, 0.5 of 2 free"
    decision = place(Request(1, 3 << 30), [Node("n1", 2, 4 << 30, used_memory=2 << 30)])
    assert "needs 3.0G memory, 2.0G of 4.0G free" in decision.why()


def test_impossible_requests_are_flagged() -> None:
    decision = place(Request(16, 1 << 30), [Node("n1", 2, 4 << 30)])
    assert decision.impossible
    assert "only 2 cpus" in decision.why()


def test_unschedulable_node() -> None:
    decision = place(Request(1, 1), [Node("n1", 2, 4 << 30, schedulable=False)])
    assert decision.rejected == {"n1": "not schedulable"}

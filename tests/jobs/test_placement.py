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


def test_constraints_filter_on_labels_and_say_which() -> None:
    nodes = [
        Node("a", 4, 8 << 30, labels={"zone": "eu", "disk": "hdd"}),
        Node("b", 4, 8 << 30, labels={"zone": "us"}),
        Node("c", 4, 8 << 30, labels={"zone": "eu", "disk": "ssd"}),
    ]
    decision = place(Request(1, 1 << 30, constraints={"node.zone": "eu", "disk": "ssd"}), nodes)
    assert decision.node == "c"
    decision = place(Request(1, 1 << 30, constraints={"zone": "asia"}), nodes)
    assert decision.node is None and decision.impossible  # no node will ever match
    assert decision.rejected["b"] == "zone is 'us', the job needs 'asia'"
    decision = place(Request(1, 1 << 30, constraints={"gpu": "a100"}), nodes)
    assert decision.rejected["a"] == "has no label gpu (the job needs gpu=a100)"
    assert place(Request(1, 1, constraints={"node.name": "b"}), nodes).node == "b"


def test_a_busy_matching_node_is_waited_for_not_impossible() -> None:
    nodes = [Node("a", 2, 4 << 30, used_cpus=2, labels={"zone": "eu"}), Node("b", 8, 16 << 30)]
    decision = place(Request(1, 1 << 30, constraints={"zone": "eu"}), nodes)
    assert decision.node is None and not decision.impossible
    assert decision.rejected["a"] == "needs 1 cpu, 0 of 2 free"


def test_spread_prefers_the_emptiest_node_binpack_the_fullest() -> None:
    nodes = [Node("busy", 4, 8 << 30, used_cpus=3, used_memory=6 << 30), Node("idle", 4, 8 << 30)]
    assert place(Request(1, 1 << 30), nodes).node == "busy"
    assert place(Request(1, 1 << 30, strategy="spread"), nodes).node == "idle"


def test_limit_stops_scanning_once_enough_nodes_fit() -> None:
    nodes = [Node(f"n{i:02}", 4, 8 << 30, used_cpus=4 if i < 5 else 0) for i in range(20)]
    assert place(Request(1, 1 << 30), nodes).node == "n19"  # all equal: the last name wins the tie
    assert place(Request(1, 1 << 30), nodes, limit=2, start=3).node in {"n05", "n06"}
    full = place(Request(8, 1 << 30), nodes, limit=2)
    assert full.impossible and len(full.rejected) == 20  # fitting nowhere: every node says why


def test_no_nodes_is_waiting_not_impossible() -> None:
    decision = place(Request(1, 1), [])
    assert decision.node is None and not decision.impossible and decision.why() == "no nodes"

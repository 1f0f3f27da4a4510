from freight.jobs.queue import FairQueues


def test_priority_then_fifo_within_a_queue() -> None:
    fq = FairQueues(4, 4 << 30)
    fq.push("q", "a", 0)
    fq.push("q", "b", 5)
    fq.push("q", "c", 0)
    queue = fq.get("q")
    assert [queue.pop(), queue.pop(), queue.pop()] == ["b", "a", "c"]


def test_weighted_fair_share_between_queues() -> None:
    fq = FairQueues(10, 10 << 30)
    fq.configure("heavy", priority=0, weight=2, paused=False)
    fq.configure("light", priority=0, weight=1, paused=False)
    for i in range(20):
        fq.push("heavy", f"h{i}", 0)
        fq.push("light", f"l{i}", 0)
    taken = {"heavy": 0, "light": 0}
    for _ in range(9):
        queue = fq.order(set())[0]
        queue.pop()
        fq.charge(queue.name, 1, 0)
        taken[queue.name] += 1
    assert taken == {"heavy": 6, "light": 3}


def test_higher_priority_queue_first_and_paused_skipped() -> None:
    fq = FairQueues(4, 4 << 30)
    fq.configure("urgent", priority=10, weight=1, paused=False)
    fq.configure("held", priority=99, weight=1, paused=True)
    fq.push("default", "d", 0)
    fq.push("urgent", "u", 0)
    fq.push("held", "h", 0)
    assert [q.name for q in fq.order(set())] == ["urgent", "default"]


def test_discard_is_lazy_but_exact() -> None:
    fq = FairQueues(4, 4 << 30)
    fq.push("q", "a", 0)
    fq.push("q", "b", 0)
    fq.discard("q", "a")
    assert fq.get("q").peek() == "b"
    assert fq.depth() == {"q": 1}

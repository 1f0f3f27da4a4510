"""Runs the service controller beside `freight up`'s scheduler: one tick a second, in a thread, only
while this process's scheduler holds the store's lease (several servers on PostgreSQL: one controller)."""

from __future__ import annotations

import logging
import os
import threading

from freight.config import Settings

log = logging.getLogger("freight.services")


def start_services(settings: Settings, every: float = 1.0, busy_every: float = 0.2) -> threading.Event:
    """Start the controller thread; set the returned event to stop it (replicas keep running). It
    ticks every `every` seconds, and every `busy_every` while a service is changing."""
    stop = threading.Event()

    def loop() -> None:
        from freight.jobs.service import JobService
        from freight.services.controller import ServiceController

        with JobService.open(settings) as svc:
            controller = ServiceController(svc)
            try:
                me = f"{os.uname().nodename}:{os.getpid()}:"
                busy = False
                while not stop.wait(busy_every if busy else every):
                    try:
                        # one controller per store: the one beside the scheduler that holds the lease
                        if (svc.scheduler_holder() or "").startswith(me):
                            busy = controller.tick()
                        else:
                            busy = False
                            controller.close()  # a standby routes nothing
                    except Exception:
                        busy = False
                        log.exception("services: tick failed")
            finally:
                controller.close()

    threading.Thread(target=loop, name="freight-services", daemon=True).start()
    return stop

"""Router: a TCP proxy on a service's port (127.0.0.1) that spreads connections over its healthy
replicas, round robin. The controller sets the backends; a replica leaves the list before it is
stopped, so no new connection reaches a replica on its way out."""

from __future__ import annotations

import contextlib
import itertools
import selectors
import socket
import threading


class Router:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.settimeout(0.2)
        self.port = port
        self._backends: list[int] = []
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"freight-router-{port}", daemon=True)
        self._thread.start()

    def set_backends(self, ports: list[int]) -> None:
        with self._lock:
            self._backends = sorted(ports)

    def backends(self) -> list[int]:
        with self._lock:
            return list(self._backends)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._listener.close()

    def _pick(self) -> int | None:
        with self._lock:
            if not self._backends:
                return None
            return self._backends[next(self._turn) % len(self._backends)]

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        port = self._pick()
        if port is None:
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            client.close()
            return
        with client, upstream:
            _pump(client, upstream)


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides have finished sending."""
    selector = selectors.DefaultSelector()
    peers = {a: b, b: a}
    for sock in peers:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    open_ends = 2
    try:
        while open_ends:
            events = selector.select(timeout=120)
            if not events:
                return  # idle for two minutes: let it go
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = source.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                target = peers[source]
                if not data:
                    selector.unregister(source)
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                    open_ends -= 1
                    continue
                target.setblocking(True)
                try:
                    target.sendall(data)
                except OSError:
                    return
                finally:
                    target.setblocking(False)
    finally:
        selector.close()

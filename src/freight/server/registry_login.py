"""This node's login to the registry freight runs (`freight up --registry`, token auth): an admin
API token of its own, stored as podman's login for the registry's address (podman's auth file, mode
0600), so the node's pulls and pushes, builds' images and `freight image` work as with `podman login`.
The token is reused while it is valid, and created again when revoked or missing."""

from __future__ import annotations

import socket

from freight.config import Settings
from freight.runtime.registry_auth import credentials, store_credentials


def ensure_node_login(settings: Settings, address: str) -> None:
    from freight.db.engine import open_engine
    from freight.server.tokens import authenticate, create_token

    engine = open_engine(settings.database_url)
    try:
        stored = credentials(address)
        if stored is not None and authenticate(engine, stored[1]) is not None:
            return
        _, token = create_token(engine, f"registry login of {socket.gethostname()}", admin=True)
        store_credentials(address, token)
    finally:
        engine.dispose()

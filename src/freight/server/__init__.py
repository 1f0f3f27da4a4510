"""The freight server: REST API, web UI and metrics around one JobService (see app.create_app)."""

from freight.server.app import create_app

__all__ = ["create_app"]

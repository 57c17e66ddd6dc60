"""The composition root: create_app and create_worker_app build btec from its packages."""

from server.app.factory import create_app, create_worker_app

__all__ = ["create_app", "create_worker_app"]

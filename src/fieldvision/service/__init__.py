"""The flow service: HTTP ingest of events into an `EventStore`, a read API and a dashboard.

``create_app(store, token=...)`` builds the FastAPI app; ``serve(url)`` runs it with uvicorn
on 127.0.0.1. Interactive API docs are at ``/docs``, the dashboard at ``/``.
"""

from fieldvision.service.api import create_app, serve

__all__ = ["create_app", "serve"]

"""HTTP: one FastAPI app (data plane, control plane, metrics, dashboard)."""

from .app import create_app

__all__ = ["create_app"]

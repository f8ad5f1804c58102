"""The beatx example project: a shop whose periodic jobs run on Celery, scheduled by beatx."""

from __future__ import annotations

# Load the Celery app whenever Django starts, so @shared_task binds to it.
from example_project.celery import app as celery_app

__all__ = ["celery_app"]

"""Experiment tracking: mirror run folders into MLflow (the folders stay the source of truth)."""

from urbanmoe.tracking.mlflow_mirror import find_run, mirror_run, tracking_uri

__all__ = ["find_run", "mirror_run", "tracking_uri"]

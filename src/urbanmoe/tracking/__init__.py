"""Experiment tracking: mirror run folders into MLflow (the folders stay the source of truth)."""

from urbanmoe.tracking.mlflow_mirror import mirror_run, tracking_uri

__all__ = ["mirror_run", "tracking_uri"]

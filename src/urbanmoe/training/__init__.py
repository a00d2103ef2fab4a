"""Training: target scaling, the loss of Eq. 8, the loop with early stopping, the registry of
models and each one's fitting, a run's folds and predictions from trained runs."""

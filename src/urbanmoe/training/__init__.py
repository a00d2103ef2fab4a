"""Training: target scaling, the loss of Eq. 8, the loop with early stopping, runs."""

"""Evaluation: metrics (R², RMSE, MAE) and efficiency (parameters, memory, time)."""

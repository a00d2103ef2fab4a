"""Evaluation: metrics (R², RMSE, MAE) and their aggregation over runs and seeds."""

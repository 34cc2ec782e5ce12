"""Backtests and their reports, statistical and neural baselines, predictors built per task."""

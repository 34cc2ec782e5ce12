"""Forecasts out: model specifications, the forecast pipeline, files of any size, Ray, ensembles, covariates."""

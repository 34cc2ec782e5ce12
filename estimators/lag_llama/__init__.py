"""Lag-Llama: a LLaMA-style decoder over lagged values with a distribution head."""

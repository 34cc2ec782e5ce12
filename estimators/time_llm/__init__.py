"""Time-LLM: a frozen language model reprogrammed for forecasting."""

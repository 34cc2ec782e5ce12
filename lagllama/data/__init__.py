"""Data in: GluonTS datasets and files, tables (long, wide, Nixtla), series chunks, frequencies, backtest tasks."""

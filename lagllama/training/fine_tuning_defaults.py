"""The fine-tuning recipe's defaults, in a module without heavy imports: the command line
reads them to build its options, and ``lagllama --help`` should not wait for Lightning."""

DEFAULTS = {
    "lr": 1e-4,
    "warmup_steps": 20,
    "ema_decay": 0.99,
    "num_batches_per_epoch": 20,
    "max_epochs": 25,
    "patience": 10,
    "freeze_layers": 0,
    "validation": "forecast",
    "min_gain": 0.01,
    "validation_samples": 50,
    "validation_series": 256,
    "confirm": True,
    "validation_windows": 3,
    "noise_factor": 2.0,
}

"""Training loops around the estimators: fine-tuning recipe, callbacks, learning-rate schedules."""

"""training.features.engine."""

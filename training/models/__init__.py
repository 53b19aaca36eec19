"""training.models."""

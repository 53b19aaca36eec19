"""training.artifacts."""

"""training.data.sources."""

"""training.pipelines."""

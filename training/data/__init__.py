"""Market data sources → Nautilus Parquet catalog."""

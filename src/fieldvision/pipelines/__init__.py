"""End-to-end pipelines: fit / predict / evaluate / report, one module per system."""

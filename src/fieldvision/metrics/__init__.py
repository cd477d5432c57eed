"""Evaluation metrics: regression, retrieval, classification and tracking, one module each."""

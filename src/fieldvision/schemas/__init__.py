"""Task schemas: the names, orders, weights and file formats a pipeline's data follow.

A schema is the single place where a task's targets and formats are declared; data readers,
models, metrics, reports and submissions all import them from here.
"""

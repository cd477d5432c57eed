"""Markdown + PNG reports shared by every pipeline."""

"""Experiment scripts: each writes CSV and PNG to ``data/``."""

"""Metrics: input distances between graphs (``distances``) and model scores (``scores``)."""

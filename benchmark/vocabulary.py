"""The benchmark's shared vocabulary, defined once: tasks, metamer kinds and record roles.

The metamer engine, the release records, the build and the evaluator all import these names from
here, so a new kind is added in one place (issue 13.1: ``KINDS`` used to be defined twice).
"""
from __future__ import annotations

TASKS = ("node", "graph")
# feature: binary (0/1 data) or continuous features per the ``features`` option; continuous:
# features relaxed to the data's per-feature range whatever the data (the model's own
# invariances, DESIGN 3); structure: edges, features fixed; joint: features and edges.
KINDS = ("feature", "continuous", "structure", "joint")
ROLES = ("original", "metamer", "near", "far")
# Kinds whose metamers change the features / the edges.
FEATURE_KINDS = ("feature", "continuous", "joint")
EDGE_KINDS = ("structure", "joint")

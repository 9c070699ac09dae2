"""Metamer generation: feature, structure and joint metamers, validity checks, twins, frozen sets."""
from benchmark.metamers.engine import (
    MetamerResult,
    feature_metamer,
    generate_metamers,
    joint_metamer,
    structure_metamer,
)
from benchmark.metamers.options import KINDS, MetamerOptions

__all__ = ["KINDS", "MetamerOptions", "MetamerResult", "feature_metamer", "generate_metamers", "joint_metamer",
           "structure_metamer"]

from benchmark.metamers.frozen import input_similarity, make_frozen_set, seed_summary  # noqa: E402
from benchmark.metamers.twins import far_twin, near_twin, near_twin_edges, near_twin_features  # noqa: E402
from benchmark.metamers.validity import (  # noqa: E402
    Validity,
    graph_validity,
    node_validity,
    null_threshold,
    pearson_rows,
)

__all__ += ["Validity", "far_twin", "graph_validity", "input_similarity", "make_frozen_set", "near_twin",
            "near_twin_edges", "near_twin_features", "node_validity", "null_threshold", "pearson_rows", "seed_summary"]

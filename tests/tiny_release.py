"""The tiny release v2 config the tests build (Cora continuous + structure, MUTAG feature; a few engine
steps): shared by tests/test_release_v2.py and tests/test_reverse.py through the ``built_v2`` fixture
of conftest, so one session builds it once."""

TINY_V2 = {
    "name": "metamer-bench-test-v2", "release": "v9", "version": "0.0.2", "seeds": [0],
    "kinds": ["feature", "continuous", "structure"], "train_seed": 1000, "protocol": "v2", "validity": "centred",
    "reference_seeds": [1000], "stages": ["early", "late", "logits"],
    "metamer_options": {"max_iterations": 6, "patience": 3, "pearson_weight": 1.0, "edge_budget": 0.25,
                        "candidate_source": "mixed", "continuous_levels": 16},
    "train_options": {"epochs": 20, "patience": 20},
    "references": {"gcn3r": {"arch": "gcn", "num_layers": 3, "residual": True}},
    "datasets": {"Cora": {"models": ["gcn3r"], "kinds": ["continuous", "structure"]},
                 "MUTAG": {"models": ["gin"], "kinds": ["feature"]}},
    "graph_tasks": {"validity": "distance", "metamer_options": {"graph_match": "readout"}},
    "reverse": {"datasets": ["Cora"], "kinds": ["continuous"], "seeds": [0]},
}

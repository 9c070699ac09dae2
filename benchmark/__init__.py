"""metamer-bench: model metamers of graph neural networks, frozen, scored and ranked."""

__version__ = "0.1.0"

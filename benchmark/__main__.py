"""``python -m benchmark``: the ``metamer-bench`` command line, for environments where the console
script is not on PATH (a venv that is not activated, ``pip install --target``)."""
import sys

from benchmark.cli import main

sys.exit(main())

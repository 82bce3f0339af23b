"""`python -m lra.bench`: the speed and memory benchmark (`lra.bench.speed`), what `make bench` runs."""

import sys

from lra.bench.speed import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m lra.bench.worker SPEC`: one configuration of the speed benchmark in this fresh process, its record
printed as one JSON line. `lra.bench.speed` starts it per configuration on CPU, so that each peak memory is its own.
"""

from __future__ import annotations

import json
import sys

import torch

from lra.bench.memory import limit_address_space
from lra.bench.speed import bench_model


def main(argv: list[str] | None = None) -> int:
    (text,) = sys.argv[1:] if argv is None else argv
    spec = json.loads(text)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    limit_address_space(spec.get("mem_limit_gb"))
    print(json.dumps(bench_model(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m lra.bench.params --summary task=<t> [overrides]`: parameter count of every model config at a task's sizes.

The LRA rule for a fair comparison: no model more than 10% above the Transformer's parameter count.
"""

from __future__ import annotations

import argparse

from lra.models import build_model, count_parameters
from lra.run.config import CONF_DIR, choices, compose_train

LIMIT = 1.10


def parameter_counts(overrides: list[str]) -> dict[str, int]:
    counts = {}
    for name in choices(CONF_DIR, "model"):
        cfg = compose_train([*overrides, f"model={name}"])
        counts[name] = count_parameters(build_model(cfg.model, cfg.task))
    return counts


def summary(overrides: list[str]) -> str:
    counts = parameter_counts(overrides)
    reference = counts["transformer"]
    lines = [f"parameters at {' '.join(overrides) or 'the default task'} (LRA rule: at most {LIMIT:.2f}x Transformer)",
             "| model | parameters | x Transformer | within rule |", "|---|---:|---:|:---:|"]
    for name, count in sorted(counts.items(), key=lambda item: item[1]):
        ratio = count / reference
        lines.append(f"| {name} | {count:,} | {ratio:.3f} | {'yes' if ratio <= LIMIT else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lra.bench.params", description=__doc__)
    parser.add_argument("--summary", action="store_true", help="print the parameter table")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. task=text")
    args = parser.parse_args(argv)
    if not args.summary:
        parser.error("nothing to do: pass --summary")
    print(summary(args.overrides))


if __name__ == "__main__":
    main()

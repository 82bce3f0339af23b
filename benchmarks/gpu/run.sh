#!/usr/bin/env bash
# The prepared GPU run (docs/gpu.md): bash benchmarks/gpu/run.sh [--budget a=600,b=600,c=1800,d=7200] [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-python}" -m lra.bench.gpu "$@"

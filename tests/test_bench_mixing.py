"""lra.bench.mixing (`python -m lra.bench.mixing`) at tiny sizes: every Fourier-mixing path against fftn(x).real."""

import json

import pytest

from lra.bench import mixing
from lra.models.mixers.fourier import PATHS


def test_mixing_micro_benchmark(tmp_path, capsys):
    argv = ["--lengths", "16,24", "--hidden", "8", "--batch", "2", "--repeats", "1",
            "--matmul-max-len", "16", "--threads", "1", "--out", str(tmp_path)]
    assert mixing.main(argv) == 0
    payload = json.loads((tmp_path / "mixing.json").read_text())
    assert {"device", "torch", "date", "batch", "hidden", "results"} <= set(payload)
    rows = {(r["length"], r["path"]): r for r in payload["results"]}
    assert set(rows) == {(n, p) for n in (16, 24) for p in ("fftn.real (autograd)", *PATHS)}
    assert rows[(24, "matmul")]["ms"] == "skipped"
    assert rows[(16, "rfft")]["ms"] > 0 and rows[(16, "fftn.real (autograd)")]["speedup"] == pytest.approx(1.0)
    assert "speed-up vs fftn.real" in capsys.readouterr().out

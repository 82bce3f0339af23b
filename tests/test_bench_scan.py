"""lra.bench.scan (`python -m lra.bench.scan`) at tiny sizes: the LRU's scan against the doubling baseline."""

import json

import pytest
import torch

from lra.bench import scan
from lra.models.mixers.lru import parallel_scan


def test_scan_micro_benchmark(tmp_path, capsys):
    argv = ["--lengths", "16,50", "--states", "4", "--batch", "2", "--repeats", "1", "--threads", "1",
            "--out", str(tmp_path)]
    assert scan.main(argv) == 0
    payload = json.loads((tmp_path / "scan.json").read_text())
    rows = {(r["length"], r["scan"]): r for r in payload["results"]}
    assert set(rows) == {(n, s) for n in (16, 50) for s in ("doubling", "parallel_scan")}
    assert rows[(16, "doubling")]["speedup"] == pytest.approx(1.0)
    for row in rows.values():
        assert row["ms"] > 0 and row["saved_mb"] > 0 and row["float32_error"] < 1e-4
    assert "wrote" in capsys.readouterr().out


def test_the_baseline_is_the_same_scan():
    g = torch.Generator().manual_seed(0)
    a = torch.complex(torch.rand(40, 3, dtype=torch.float64, generator=g), torch.zeros(40, 3, dtype=torch.float64))
    b = torch.complex(torch.randn(2, 40, 3, dtype=torch.float64, generator=g), torch.randn(2, 40, 3,
                                                                                            dtype=torch.float64))
    torch.testing.assert_close(scan.doubling_scan(a, b), parallel_scan(a, b), rtol=1e-10, atol=1e-10)

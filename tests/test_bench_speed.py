"""lra.bench.speed (`python -m lra.bench`) at tiny sizes: the model table in-process and isolated (lra.bench.worker),
ratios, OOM, one-line errors."""

import json

import pytest

from lra.bench import speed

RUN_FIELDS = {"device", "device_name", "torch", "date", "batch", "task", "memory_method", "results"}


def test_model_benchmark_in_process_writes_json_and_plot(tmp_path, capsys):
    argv = ["--models", "fnet,transformer", "--lengths", "64,128", "--batch", "2", "--repeats", "2",
            "--out", str(tmp_path), "--no-isolate", "--threads", "1"]
    assert speed.main(argv) == 0
    payload = json.loads((tmp_path / "bench.json").read_text())
    assert RUN_FIELDS <= set(payload) and payload["batch"] == 2 and payload["device"] == "cpu"
    assert "in-process" in payload["memory_method"]
    rows = {(r["model"], r["length"]): r for r in payload["results"]}
    assert set(rows) == {(m, n) for m in ("fnet", "transformer") for n in (64, 128)}
    for (model, _), row in rows.items():
        assert row["steps_per_s"] > 0 and row["peak_memory_mb"] >= 0 and row["n_params"] > 0
        assert len(row["steps_per_s_repeats"]) == 2
        assert row["speedup"] == pytest.approx(row["steps_per_s"] / rows[("transformer", row["length"])]["steps_per_s"])
        if model == "transformer":
            assert row["speedup"] == pytest.approx(1.0)
    # The text recipe: d_model 256, 4 layers; FNet has no mixing parameters, so fewer than the Transformer.
    assert rows[("fnet", 64)]["n_params"] < rows[("transformer", 64)]["n_params"]
    assert (tmp_path / "bench.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "steps/s (ratio to transformer)" in out and "(1.00x)" in out


def test_model_benchmark_isolated_subprocess(tmp_path):
    argv = ["--models", "fnet", "--lengths", "32", "--batch", "1", "--repeats", "1", "--threads", "1",
            "--out", str(tmp_path)]
    assert speed.main(argv) == 0
    payload = json.loads((tmp_path / "bench.json").read_text())
    assert "fresh subprocess" in payload["memory_method"]
    (row,) = payload["results"]
    assert row["steps_per_s"] > 0 and row["peak_memory_mb"] > 0


def test_oom_is_recorded_not_raised(monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

    monkeypatch.setattr(speed, "build", no_memory)
    spec = {"model": "fnet", "task": "text", "length": 8, "batch": 1, "device": "cpu", "precision": "32",
            "warmup": 0, "repeats": 1, "steps_per_repeat": 1}
    assert speed.bench_model(spec)["steps_per_s"] == "OOM"
    monkeypatch.setattr(speed, "build", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # other errors are not hidden
        speed.bench_model(spec)


def test_table_ratios_and_oom():
    records = [
        {"model": "transformer", "length": 512, "steps_per_s": 2.0, "peak_memory_mb": 400.0},
        {"model": "fnet", "length": 512, "steps_per_s": 4.0, "peak_memory_mb": 100.0},
        {"model": "transformer", "length": 1024, "steps_per_s": "OOM", "peak_memory_mb": None},
        {"model": "fnet", "length": 1024, "steps_per_s": 2.0, "peak_memory_mb": 200.0},
    ]
    table = speed.format_table(records, "transformer")
    assert "4.00 (2.00x)" in table and "100 (0.25x)" in table and "OOM" in table
    fnet_line = next(line for line in table.splitlines() if line.startswith("fnet"))
    assert fnet_line.split()[-1] == "2.00"  # no ratio where the baseline ran out of memory


def test_unknown_names_are_one_line_errors(tmp_path, capsys):
    assert speed.main(["--models", "fnet,nonsense", "--task", "text", "--out", str(tmp_path)]) == 2
    assert speed.main(["--models", "fnet", "--task", "nonsense", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("error: model=nonsense is not available") and "fnet_hybrid" in lines[0]
    assert lines[1].startswith("error: task=nonsense is not available") and "retrieval" in lines[1]
    assert not (tmp_path / "bench.json").exists()


def test_fnet_hybrid_benchmark_writes_json(tmp_path, capsys):
    # Pathfinder's recipe is the smallest with 4 layers (d_model 32): FNet below, attention in the last two.
    argv = ["--models", "fnet_hybrid,fnet_hybrid-nomix", "--task", "pathfinder", "--lengths", "16", "--batch", "2",
            "--repeats", "1", "--warmup", "0", "--baseline", "fnet_hybrid", "--no-isolate", "--threads", "1",
            "--out", str(tmp_path)]
    assert speed.main(argv) == 0
    payload = json.loads((tmp_path / "bench.json").read_text())
    assert payload["task"] == "pathfinder" and payload["models"] == ["fnet_hybrid", "fnet_hybrid-nomix"]
    rows = {r["model"]: r for r in payload["results"]}
    assert rows["fnet_hybrid"]["steps_per_s"] > 0 and rows["fnet_hybrid"]["speedup"] == pytest.approx(1.0)
    assert rows["fnet_hybrid-nomix"]["steps_per_s"] > 0
    assert rows["fnet_hybrid-nomix"]["n_params"] < rows["fnet_hybrid"]["n_params"]  # attention weights removed
    assert "fnet_hybrid-nomix" in capsys.readouterr().out


def test_transformer_is_reported_with_attention_dropout_as_configured_and_zero(tmp_path):
    argv = ["--models", "transformer,transformer-attn0,fnet", "--lengths", "32", "--batch", "2", "--repeats", "1",
            "--out", str(tmp_path), "--no-isolate", "--threads", "1"]
    assert speed.main(argv) == 0
    rows = {r["model"]: r for r in json.loads((tmp_path / "bench.json").read_text())["results"]}
    assert rows["transformer"]["attn_dropout"] == 0.1  # the text recipe's
    assert rows["transformer"]["attention_kernel"] == "cpu_blocked_dropout"
    assert rows["transformer-attn0"]["attn_dropout"] == 0.0
    assert rows["transformer-attn0"]["attention_kernel"] == "sdpa"
    assert rows["fnet"]["attention_kernel"] is None
    assert rows["transformer"]["n_params"] == rows["transformer-attn0"]["n_params"]

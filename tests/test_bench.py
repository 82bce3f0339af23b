"""lra.bench at tiny sizes: the model table, the mixing micro-benchmark, the loader benchmark, configs (composed as
train.py composes them), OOM."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from lra import bench
from lra.errors import LRAError
from lra.models.mixers.fourier import PATHS, FourierMixer
from tests.conftest import compose_train, write_listops

RUN_FIELDS = {"device", "device_name", "torch", "date", "batch", "task", "memory_method", "results"}


def test_model_benchmark_in_process_writes_json_and_plot(tmp_path, capsys):
    argv = ["--models", "fnet,transformer", "--lengths", "64,128", "--batch", "2", "--repeats", "2",
            "--out", str(tmp_path), "--no-isolate", "--threads", "1"]
    assert bench.main(argv) == 0
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
    assert bench.main(argv) == 0
    payload = json.loads((tmp_path / "bench.json").read_text())
    assert "fresh subprocess" in payload["memory_method"]
    (row,) = payload["results"]
    assert row["steps_per_s"] > 0 and row["peak_memory_mb"] > 0


def test_oom_is_recorded_not_raised(monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

    monkeypatch.setattr(bench, "build", no_memory)
    spec = {"model": "fnet", "task": "text", "length": 8, "batch": 1, "device": "cpu", "precision": "32",
            "warmup": 0, "repeats": 1, "steps_per_repeat": 1}
    assert bench.bench_model(spec)["steps_per_s"] == "OOM"
    monkeypatch.setattr(bench, "build", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # other errors are not hidden
        bench.bench_model(spec)


def test_table_ratios_and_oom():
    records = [
        {"model": "transformer", "length": 512, "steps_per_s": 2.0, "peak_memory_mb": 400.0},
        {"model": "fnet", "length": 512, "steps_per_s": 4.0, "peak_memory_mb": 100.0},
        {"model": "transformer", "length": 1024, "steps_per_s": "OOM", "peak_memory_mb": None},
        {"model": "fnet", "length": 1024, "steps_per_s": 2.0, "peak_memory_mb": 200.0},
    ]
    table = bench.format_table(records, "transformer")
    assert "4.00 (2.00x)" in table and "100 (0.25x)" in table and "OOM" in table
    fnet_line = next(line for line in table.splitlines() if line.startswith("fnet"))
    assert fnet_line.split()[-1] == "2.00"  # no ratio where the baseline ran out of memory


def test_configs_are_what_train_composes_and_nomix_removes_mixing():
    cfg = bench.train_config("text", "fnet")
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.model.d_ff) == (256, 4, 1024)  # the text recipe
    assert (cfg.model.mixer, cfg.model.norm) == ("fourier", "post")
    assert cfg.task.vocab_size == 257 and cfg.task.n_classes == 2
    # fnet_hybrid: a defaults list over fnet over _base; the same config train.py gets.
    cfg = bench.train_config("listops", "fnet_hybrid")
    train = compose_train(["task=listops", "model=fnet_hybrid"])
    assert OmegaConf.to_container(cfg.model, resolve=True) == OmegaConf.to_container(train.model, resolve=True)
    assert (cfg.model.mixer, list(cfg.model.attention_layers), cfg.model.d_model) == ("fourier", [-2, -1], 512)
    cfg.task.max_len = 7  # a copy: the cached composition is not changed
    assert bench.train_config("listops", "fnet_hybrid").task.max_len == train.task.max_len
    with pytest.raises(LRAError, match="task=nonsense is not available; choose one of: .*listops"):
        bench.train_config("nonsense", "fnet")
    with pytest.raises(LRAError, match="model=nonsense is not available; choose one of: .*fnet_hybrid"):
        bench.train_config("text", "nonsense")
    model, task = bench.build("fnet-nomix", "text", 16)
    assert task.max_len == 16 and all(isinstance(b.mixer, bench.ZeroMixer) for b in model.encoder.blocks)
    model, _ = bench.build("fnet", "text", 16)
    assert all(isinstance(b.mixer, FourierMixer) for b in model.encoder.blocks)
    model, _ = bench.build("fnet_hybrid", "text", 16)
    assert [type(b.mixer).__name__ for b in model.encoder.blocks] == ["FourierMixer"] * 2 + ["Attention"] * 2


def test_unknown_names_are_one_line_errors(tmp_path, capsys):
    assert bench.main(["--models", "fnet,nonsense", "--task", "text", "--out", str(tmp_path)]) == 2
    assert bench.main(["--models", "fnet", "--task", "nonsense", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("error: model=nonsense is not available") and "fnet_hybrid" in lines[0]
    assert lines[1].startswith("error: task=nonsense is not available") and "retrieval" in lines[1]
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.parametrize("task", ["listops", "text", "retrieval", "image", "pathfinder", "pathx"])
def test_every_task_builds_a_model_and_a_batch_it_takes(task):
    model, cfg = bench.build("fnet", task, 16)
    batch = bench.random_batch(cfg, 2, 16, torch.device("cpu"))
    assert ("input_ids_2" in batch and "mask_2" in batch) == bool(cfg.dual) == (task == "retrieval")
    for key in ("input_ids", "input_ids_2") if cfg.dual else ("input_ids",):
        assert batch[key].shape == (2, 16) and 1 <= batch[key].min() and batch[key].max() < cfg.vocab_size
    assert model(batch).shape == (2, cfg.n_classes)


def test_random_batch_dual_task():
    batch = bench.random_batch({"vocab_size": 5, "n_classes": 3, "dual": True}, 2, 7, torch.device("cpu"))
    assert batch["input_ids_2"].shape == (2, 7) and batch["mask_2"].all()
    assert 1 <= batch["input_ids"].min() and batch["input_ids"].max() < 5 and batch["label"].max() < 3
    again = bench.random_batch({"vocab_size": 5, "n_classes": 3, "dual": True}, 2, 7, torch.device("cpu"))
    assert all(torch.equal(batch[k], again[k]) for k in batch)  # seeded
    with pytest.raises(LRAError, match="vocab_size=1"):
        bench.random_batch({"vocab_size": 1, "n_classes": 2}, 2, 7, torch.device("cpu"))


def test_fnet_hybrid_benchmark_writes_json(tmp_path, capsys):
    # Pathfinder's recipe is the smallest with 4 layers (d_model 32): FNet below, attention in the last two.
    argv = ["--models", "fnet_hybrid,fnet_hybrid-nomix", "--task", "pathfinder", "--lengths", "16", "--batch", "2",
            "--repeats", "1", "--warmup", "0", "--baseline", "fnet_hybrid", "--no-isolate", "--threads", "1",
            "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    payload = json.loads((tmp_path / "bench.json").read_text())
    assert payload["task"] == "pathfinder" and payload["models"] == ["fnet_hybrid", "fnet_hybrid-nomix"]
    rows = {r["model"]: r for r in payload["results"]}
    assert rows["fnet_hybrid"]["steps_per_s"] > 0 and rows["fnet_hybrid"]["speedup"] == pytest.approx(1.0)
    assert rows["fnet_hybrid-nomix"]["steps_per_s"] > 0
    assert rows["fnet_hybrid-nomix"]["n_params"] < rows["fnet_hybrid"]["n_params"]  # attention weights removed
    assert "fnet_hybrid-nomix" in capsys.readouterr().out


def test_mixing_micro_benchmark(tmp_path, capsys):
    argv = ["--mixing", "--lengths", "16,24", "--hidden", "8", "--batch", "2", "--repeats", "1",
            "--matmul-max-len", "16", "--threads", "1", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    payload = json.loads((tmp_path / "mixing.json").read_text())
    assert {"device", "torch", "date", "batch", "hidden", "results"} <= set(payload)
    rows = {(r["length"], r["path"]): r for r in payload["results"]}
    assert set(rows) == {(n, p) for n in (16, 24) for p in ("fftn.real (autograd)", *PATHS)}
    assert rows[(24, "matmul")]["ms"] == "skipped"
    assert rows[(16, "rfft")]["ms"] > 0 and rows[(16, "fftn.real (autograd)")]["speedup"] == pytest.approx(1.0)
    assert "speed-up vs fftn.real" in capsys.readouterr().out


def test_loader_benchmark(tmp_path):
    write_listops(tmp_path / "data" / "listops-1000")
    argv = ["--loader", "--task", "listops", "--data-dir", str(tmp_path / "data"), "--batch", "4",
            "--repeats", "2", "--steps", "3", "--out", str(tmp_path / "out")]
    assert bench.main(argv) == 0
    payload = json.loads((tmp_path / "out" / "loader.json").read_text())
    assert payload["batch"] == 4 and payload["batches_per_s"] > 0 and payload["tokens_per_s"] > 0


def test_loader_without_a_task_config_is_a_one_line_error(tmp_path, capsys):
    assert bench.main(["--loader", "--task", "no-such-task", "--out", str(tmp_path)]) == 2
    assert "no-such-task" in capsys.readouterr().err

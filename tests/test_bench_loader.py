"""lra.bench.loader (`python -m lra.bench.loader`): batches/s of a task's DataModule on tiny ListOps."""

import json

from lra.bench import loader
from tests.task_fixtures import write_listops


def test_loader_benchmark(tmp_path):
    write_listops(tmp_path / "data" / "listops-1000")
    argv = ["--task", "listops", "--data-dir", str(tmp_path / "data"), "--batch", "4",
            "--repeats", "2", "--steps", "3", "--out", str(tmp_path / "out")]
    assert loader.main(argv) == 0
    payload = json.loads((tmp_path / "out" / "loader.json").read_text())
    assert payload["batch"] == 4 and payload["batches_per_s"] > 0 and payload["tokens_per_s"] > 0


def test_loader_without_a_task_config_is_a_one_line_error(tmp_path, capsys):
    assert loader.main(["--task", "no-such-task", "--out", str(tmp_path)]) == 2
    assert "no-such-task" in capsys.readouterr().err

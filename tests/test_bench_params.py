"""lra.bench.params (`python -m lra.bench.params --summary`): the parameter table covers every model config."""

from lra.bench.params import main
from lra.run.config import CONF_DIR, choices


def test_summary_lists_every_model(capsys):
    main(["--summary", "task=listops", "task.max_len=64", "model.d_model=32", "model.n_heads=4", "model.d_ff=64",
          "model.n_layers=2"])
    table = capsys.readouterr().out
    for name in choices(CONF_DIR, "model"):
        assert f"| {name} |" in table
    assert "| transformer | " in table and " 1.000 | yes |" in table

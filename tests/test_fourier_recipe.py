"""experiment=fourier/<task>: the Fourier Transformer's own LRA protocol (LUMIA-Group/FourierTransformer
LRA/code/lra_config.py, run_tasks.py), composed, counted against their parameter count, and trained on every task's
fixture files."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from lra.data.build import build_datamodule
from lra.models import build_model, count_parameters
from lra.models.mixers.fourier_transformer import FourierTransformerRelease
from lra.run.config import CONF_DIR, choices, compose_train
from lra.run.train import run
from tests.helpers import tiny_run_overrides
from tests.task_fixtures import MAKERS

# From their lra_config.py, not from our configs: layers, d, FFN, heads, head dim, dropout, attention dropout,
# vocab, max_seq_len, batch, lr, train steps, weight decay, classes; warm-up = steps // 10.
THEIRS = {
    "listops": (6, 512, 2048, 8, 64, 0.1, 0.1, 32, 2000, 64, 1e-4, 96000 // 64 * 20, 0.1, 10),
    "text": (6, 512, 2048, 8, 64, 0.1, 0.1, 512, 2000, 64, 2e-5, 25000 // 64 * 20, 0.0, 2),
    "retrieval": (4, 128, 512, 4, 32, 0.1, 0.1, 512, 1000, 64, 1e-3, 147086 // 64 * 10, 0.0, 2),
    "image": (3, 64, 128, 4, 16, 0.3, 0.3, 256, 1024, 256, 1.8e-3, 45000 // 256 * 150, 0.0, 10),
    "pathfinder": (4, 128, 128, 8, 16, 0.3, 0.3, 512, 1024, 512, 5e-4, 160000 // 512 * 200, 0.0, 2),
}
TASKS = sorted(THEIRS)
MODELS = choices(CONF_DIR, "model")


def their_parameter_count(task: str) -> int:
    """What their run_tasks.py prints as num_parameter, from the config: embeddings (position table rounded up to
    2^k rows), per layer two LayerNorms, biased W_q, W_k, W_v, ff and the FFN, a final LayerNorm, and the head
    (Retrieval's on [u, v, u*v, u-v])."""
    layers, d, ffn, heads, head_dim, _, _, vocab, max_len, *_, classes = THEIRS[task]
    width = heads * head_dim
    rows = 2 ** math.ceil(math.log2(max_len))
    per_layer = 4 * d + 3 * (d * width + width) + (width * d + d) + (d * ffn + ffn) + (ffn * d + d)
    head_in = d * (4 if task == "retrieval" else 1)
    return vocab * d + rows * d + layers * per_layer + 2 * d + (head_in * ffn + ffn) + (ffn * classes + classes)


@pytest.mark.parametrize("task", TASKS)
def test_recipe_composes_to_their_config(task):
    layers, d, ffn, heads, head_dim, drop, attn_drop, vocab, max_len, batch, lr, steps, wd, _ = THEIRS[task]
    cfg = compose_train([f"experiment=fourier/{task}", "model=fourier_transformer"])
    m = cfg.model
    assert cfg.recipe == f"fourier/{task}" and cfg.headline == "best" and cfg.seed == 42
    assert (m.n_layers, m.d_model, m.d_ff, m.n_heads, m.dropout, m.attn_dropout) == (layers, d, ffn, heads, drop,
                                                                                       attn_drop)
    assert (m.qkv_dim or m.d_model) == heads * head_dim and m.vocab_rows == vocab
    assert m.pos_rows == 2 ** math.ceil(math.log2(max_len)) and m.pos == "learned"
    assert (m.pool, m.cls_token, m.norm, m.init, m.impl) == ("cls", "shift", "pre", "small_embed", "release")
    assert (cfg.task.batch_size, cfg.optim.lr, cfg.trainer.max_steps, cfg.optim.weight_decay) == (batch, lr, steps, wd)
    assert cfg.optim.warmup_steps == steps // 10 and cfg.optim.schedule == "linear"
    assert list(cfg.optim.betas) == [0.9, 0.999] and cfg.optim.eps == 1e-6 and cfg.trainer.gradient_clip_val is None
    # The input: their padded lengths (ListOps 2048; Image, Pathfinder 1024); Text and Retrieval at the position
    # table's length, the longest their model takes (the recipe file says why).
    assert cfg.task.max_len == {"listops": 2048, "text": 2048, "retrieval": 1024}.get(task, 1024)
    assert cfg.task.get("interaction", "paper") == "paper"
    # Other models run as their softmax baseline: the paper's methods, same protocol.
    assert compose_train([f"experiment=fourier/{task}", "model=transformer"]).model.impl == "paper"


@pytest.mark.parametrize("task", TASKS)
def test_parameter_count_equals_theirs(task):
    cfg = compose_train([f"experiment=fourier/{task}", "model=fourier_transformer"])
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.task)
    assert isinstance(model.encoder.blocks[0].mixer, FourierTransformerRelease)
    assert list(model.encoder.resizers) == ["0"]
    assert count_parameters(model) == their_parameter_count(task)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("task", TASKS)
def test_every_model_takes_two_steps_on_the_fixtures(tmp_path, task):
    """Every model config under the recipe (tiny sizes), two AdamW steps on a real fixture batch; the Fourier
    Transformer also end to end through train.py's run(), results.json and all."""
    data_dir = tmp_path / "data"
    extra = MAKERS[task](data_dir)
    out = tmp_path / "run"
    base = [f"experiment=fourier/{task}", *tiny_run_overrides(data_dir, out, steps=2), *extra]
    cfg = compose_train([*base, "model=fourier_transformer"])
    run(cfg)
    results = json.loads((out / "results.json").read_text())
    assert (results["recipe"], results["model"], results["step"]) == (f"fourier/{task}", "fourier_transformer", 2)
    assert results["headline"] == "best"

    datamodule = build_datamodule(cfg.task, 0)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = {key: value[:2] if torch.is_tensor(value) else value  # `padded`: a host-side flag
             for key, value in next(iter(datamodule.train_dataloader())).items()}
    smaller = ["model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.d_ff=16", "model.attention_layers=[]"]
    for model_name in MODELS:
        cfg = compose_train([*base, f"model={model_name}", *smaller])
        torch.manual_seed(0)
        model = build_model(cfg.model, cfg.task)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        before = [p.detach().clone() for p in model.parameters()]
        for _ in range(2):
            loss = F.cross_entropy(model(batch), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert torch.isfinite(loss), (task, model_name)
        assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)), (task, model_name)


def test_no_published_row_without_a_read_table():
    """Table 1 of arXiv 2305.15099 was not readable here: the protocol is known, its numbers are not entered."""
    from lra.published import ACCURACY, RECIPES, published_row

    assert "fourier" in RECIPES and "not read" in RECIPES["fourier"]
    assert not [row for row in ACCURACY if row.recipe == "fourier"]
    assert published_row("fourier_transformer", "fourier/listops") is None

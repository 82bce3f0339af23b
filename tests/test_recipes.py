"""The named protocols (conf/experiment/<recipe>/<task>.yaml): each composes for every task and model, records its
name, and carries the values its source states (docs/reference.md#small-protocols)."""

from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from lra.models import build_model
from lra.models.encoder import Encoder
from lra.run.config import CONF_DIR, choices
from lra.run.schedules import LinearOneCycle, linear

MODELS = choices(CONF_DIR, "model")
RECIPES = sorted({name.split("/")[0] for name in choices(CONF_DIR, "experiment") if "/" in name})
# Top-level recipe files (<recipe>/<task>); <recipe>/<task>/<model> files are per-model overlays.
RECIPE_TASKS = [name for name in choices(CONF_DIR, "experiment") if name.count("/") == 1]

# From the sources, not from our configs: (max_steps, warmup, batch, max_len, lr) per task.
# Nystromformer LRA/code/lra_config.py; Skyformer src/config.py and paper section 5; xformers config_nystrom.json.
STATED = {
    "nystrom": {
        "listops": (5000, 1000, 32, 2000, 1e-4), "text": (20000, 8000, 32, 4000, 1e-4),
        "retrieval": (30000, 800, 32, 4000, 1e-4), "image": (35000, 175, 256, 1024, 1e-4),
        "pathfinder": (62400, 312, 256, 1024, 1e-4),
    },
    "skyformer": {
        "listops": (50000, 1000, 32, 2000, 1e-4), "text": (50000, 80, 16, 4000, 1e-4),
        "retrieval": (50000, 800, 16, 4000, 2e-4), "image": (50000, 175, 256, 1024, 1e-4),
        "pathfinder": (50000, 312, 128, 1024, 2e-4),
    },
    "xformers": {
        "listops": (10000, 1000, 32, 2048, 1e-4), "text": (20000, 8000, 32, 4096, 1e-4),
        "retrieval": (30000, 800, 32, 4096, 1e-4), "image": (35000, 175, 256, 1024, 1e-4),
        "pathfinder": (62400, 312, 256, 1024, 1e-4),
    },
}


def test_recipes_under_test_are_the_config_groups():
    assert {"lra", "fnet", "s4", "nystrom", "skyformer", "xformers"} <= set(RECIPES)
    for recipe, tasks in STATED.items():
        assert sorted(tasks) == sorted(name.split("/")[1] for name in RECIPE_TASKS if name.startswith(recipe + "/"))


@pytest.mark.parametrize("name", RECIPE_TASKS)
def test_each_recipe_records_its_name_and_carries_its_sources_values(name):
    """Every model composes and builds under every recipe in test_sweeps; here, what each recipe file must say."""
    recipe = name.split("/")[0]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={name}"])
    assert cfg.recipe == name, f"conf/experiment/{name}.yaml must set `recipe: {name}`"
    if recipe not in STATED:
        return
    steps, warmup, batch, max_len, lr = STATED[recipe][cfg.task.name]
    got = (cfg.trainer.max_steps, cfg.optim.warmup_steps, cfg.task.batch_size, cfg.task.max_len)
    assert got == (steps, warmup, batch, max_len)
    assert cfg.optim.lr == lr and cfg.optim.schedule == "linear" and cfg.optim.weight_decay == 0
    assert (cfg.model.n_layers, cfg.model.d_model, cfg.model.d_ff, cfg.model.n_heads) == (2, 64, 128, 2)
    assert cfg.model.norm == "pre" and cfg.model.pos == "learned" and cfg.model.impl == "paper"
    assert cfg.model.init == "small_embed" and list(cfg.optim.betas) == [0.9, 0.999] and cfg.optim.eps == 1e-6
    build_model(cfg.model, cfg.task)


# From the sources, not from our configs. state-spaces/s4 configs/experiment/lra/s4-*.yaml: (n_layers, d_model, norm,
# dropout, lr, warmup, steps, batch, d_state, dt at the main lr (lr.dt: null), dt_min).
S4_STATED = {
    "listops": (6, 256, "post", 0.0, 0.01, 12000, 120000, 32, 4, True, 0.001),
    "text": (6, 256, "pre", 0.0, 0.01, 5000, 50000, 16, 4, True, 0.001),
    "retrieval": (6, 256, "pre", 0.0, 0.01, 5000, 50000, 64, 4, True, 0.001),
    "image": (6, 512, "post", 0.1, 0.01, 18000, 180000, 50, 64, False, 0.001),
    "pathfinder": (6, 256, "pre", 0.0, 0.004, 50000, 500000, 64, 64, False, 0.001),
    "pathx": (6, 256, "pre", 0.0, 0.001, 50000, 500000, 16, 64, False, 0.0001),
}
# The LRU paper (arXiv 2303.06349) Table 9 and Table 8's LRU row: (H, N, iterations, batch, LR factor, dropout, r_min,
# r_max, bidirectional (appendix D.1)); base lr: sCIFAR 0.004 (section C.2), else S5's (its run_lra_*.sh).
LRU_STATED = {
    "listops": (128, 256, 80000, 32, 0.5, 0.0, 0.0, 0.99, False, 0.003),
    "text": (256, 192, 50000, 32, 0.1, 0.1, 0.5, 0.9, False, 0.004),
    "retrieval": (128, 256, 100000, 64, 0.5, 0.1, 0.5, 0.9, False, 0.002),
    "image": (512, 384, 180000, 50, 0.25, 0.1, 0.9, 0.999, False, 0.004),
    "pathfinder": (192, 256, 500000, 64, 0.25, 0.0, 0.9, 0.999, True, 0.0045),
    "pathx": (128, 256, 250000, 32, 0.25, 0.0, 0.999, 0.9999, True, 0.0018),
}


def s4_config(task: str, model: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[f"experiment=s4/{task}", f"model={model}"])


@pytest.mark.parametrize("task", sorted(S4_STATED))
def test_s4_recipe_carries_the_s4_authors_values_for_s4d(task):
    layers, width, norm, dropout, lr, warmup, steps, batch, d_state, dt_main, dt_min = S4_STATED[task]
    cfg = s4_config(task, "s4d")
    m, o = cfg.model, cfg.optim
    assert (m.n_layers, m.d_model, m.norm, m.norm_type, m.dropout, m.attn_dropout) == (
        layers, width, norm, "batch", dropout, dropout)
    assert (m.d_ff, m.pool, m.pos, m.head, m.d_state, m.dt_min, m.dt_lr) == (
        0, "mean", "none", "linear", d_state, dt_min, "lr" if dt_main else "ssm")
    assert (o.lr, o.ssm_lr, o.weight_decay, o.bias_norm_decay, o.schedule, o.warmup_steps) == (
        lr, 0.001, 0.05, False, "cosine", warmup)
    assert (cfg.trainer.max_steps, cfg.task.batch_size, list(o.betas), o.eps) == (steps, batch, [0.9, 0.999], 1e-8)
    assert task != "text" or cfg.task.max_len == 4096
    build_model(cfg.model, cfg.task)


@pytest.mark.parametrize("task", sorted(LRU_STATED))
def test_s4_recipe_carries_the_lru_papers_values_for_the_lru(task):
    width, states, steps, batch, factor, dropout, r_min, r_max, both, lr = LRU_STATED[task]
    cfg = s4_config(task, "lru")
    m, o = cfg.model, cfg.optim
    assert cfg.recipe == f"s4/{task}" and (m.n_layers, m.d_model, m.d_state) == (6, width, states)
    assert (m.norm, m.norm_type, m.dropout, m.attn_dropout, m.d_ff) == ("pre", "batch", dropout, dropout, 0)
    assert (m.r_min, m.r_max, m.bidirectional) == (r_min, r_max, both)
    assert m.max_phase == pytest.approx(math.pi / 10 if task == "pathx" else 2 * math.pi)
    assert (o.lr, o.weight_decay, o.bias_norm_decay, o.schedule) == (lr, 0.05, True, "cosine")
    assert o.ssm_lr == pytest.approx(lr * factor, rel=1e-9)
    assert (cfg.trainer.max_steps, o.warmup_steps, cfg.task.batch_size) == (steps, steps // 10, batch)
    build_model(cfg.model, cfg.task)


def test_no_experiment_is_custom():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert compose(config_name="train", overrides=["task=text"]).recipe == "custom"


def test_xformers_reads_cls_on_the_text_tasks_and_the_others_mean():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        pools = {
            name: compose(config_name="train", overrides=[f"experiment={name}"]).model.pool
            for name in RECIPE_TASKS if name.split("/")[0] in STATED
        }
    expected = {
        name: "cls" if name.startswith("xformers/") and name.split("/")[1] in ("listops", "text", "retrieval")
        else "mean_zeros"
        for name in pools
    }
    assert pools == expected


def test_linear_schedule_is_torchs_one_cycle_lr_and_beta1():
    def optimizer():
        return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-4, betas=(0.9, 0.999))

    theirs, ours = optimizer(), optimizer()
    reference = torch.optim.lr_scheduler.OneCycleLR(
        theirs, max_lr=1e-4, pct_start=300 / 2000, anneal_strategy="linear", total_steps=2000
    )
    scheduler = LinearOneCycle(ours, warmup=300, total=2000)
    for _ in range(2000):
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-9, abs=1e-18)
        assert ours.param_groups[0]["betas"] == pytest.approx(theirs.param_groups[0]["betas"], abs=1e-12)
        theirs.step(), ours.step(), reference.step(), scheduler.step()
    # Past the planned end (a resume with a larger max_steps) it holds the final value instead of raising.
    assert linear(5000, 300, 2000) == linear(1999, 300, 2000) == pytest.approx(1 / 25 / 1e4)
    assert linear(0, 300, 2000) == pytest.approx(1 / 25) and linear(299, 300, 2000) == 1.0


def test_mean_zeros_pool_is_the_real_positions_sum_over_max_len():
    torch.manual_seed(0)
    kwargs = dict(layers=["fourier"], vocab_size=9, max_len=12, d_model=8, n_heads=2, d_ff=16, dropout=0.0,
                  attn_dropout=0.0, norm="pre", pos="learned")
    zeros, mean = Encoder(pool="mean_zeros", **kwargs).eval(), Encoder(pool="mean", **kwargs).eval()
    mean.load_state_dict(zeros.state_dict())
    ids = torch.randint(1, 9, (3, 12))
    mask = torch.arange(12)[None] < torch.tensor([[12], [7], [3]])
    ids = ids * mask
    n_real = mask.sum(1, keepdim=True).float()
    torch.testing.assert_close(zeros(ids, mask), mean(ids, mask) * n_real / 12)


def test_small_embed_init_draws_token_embeddings_at_std_002():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=nystrom/text", "model=transformer"])
    model = build_model(cfg.model, cfg.task)
    tokens = model.encoder.embed.tokens.weight
    assert 0.018 < tokens.std().item() < 0.022
    feed_forward = model.encoder.blocks[0].ffn[0]  # PyTorch's default: bias uniform in +-1/sqrt(fan_in), not ~0
    assert 0.5 / 8 < feed_forward.bias.abs().max().item() <= 1 / 8

"""lra.bench.configs: what train.py composes, `-nomix` models, and batches shaped like the task."""

import pytest
import torch
from omegaconf import OmegaConf

from lra.bench import configs
from lra.errors import LRAError
from lra.models.mixers.fourier import FourierMixer
from lra.run.config import compose_train


def test_configs_are_what_train_composes_and_nomix_removes_mixing():
    cfg = configs.train_config("text", "fnet")
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.model.d_ff) == (256, 4, 1024)  # the text recipe
    assert (cfg.model.mixer, cfg.model.norm) == ("fourier", "post")
    assert cfg.task.vocab_size == 257 and cfg.task.n_classes == 2
    # fnet_hybrid: a defaults list over fnet over _base; the same config train.py gets.
    cfg = configs.train_config("listops", "fnet_hybrid")
    train = compose_train(["task=listops", "model=fnet_hybrid"])
    assert OmegaConf.to_container(cfg.model, resolve=True) == OmegaConf.to_container(train.model, resolve=True)
    assert (cfg.model.mixer, list(cfg.model.attention_layers), cfg.model.d_model) == ("fourier", [-2, -1], 512)
    cfg.task.max_len = 7  # a copy: the cached composition is not changed
    assert configs.train_config("listops", "fnet_hybrid").task.max_len == train.task.max_len
    with pytest.raises(LRAError, match="task=nonsense is not available; choose one of: .*listops"):
        configs.train_config("nonsense", "fnet")
    with pytest.raises(LRAError, match="model=nonsense is not available; choose one of: .*fnet_hybrid"):
        configs.train_config("text", "nonsense")
    model, task = configs.build("fnet-nomix", "text", 16)
    assert task.max_len == 16 and all(isinstance(b.mixer, configs.ZeroMixer) for b in model.encoder.blocks)
    model, _ = configs.build("fnet", "text", 16)
    assert all(isinstance(b.mixer, FourierMixer) for b in model.encoder.blocks)
    model, _ = configs.build("fnet_hybrid", "text", 16)
    assert [type(b.mixer).__name__ for b in model.encoder.blocks] == ["FourierMixer"] * 2 + ["Attention"] * 2


@pytest.mark.parametrize("task", ["listops", "text", "retrieval", "image", "pathfinder", "pathx"])
def test_every_task_builds_a_model_and_a_batch_it_takes(task):
    model, cfg = configs.build("fnet", task, 16)
    batch = configs.random_batch(cfg, 2, 16, torch.device("cpu"))
    assert ("input_ids_2" in batch and "mask_2" in batch) == bool(cfg.dual) == (task == "retrieval")
    for key in ("input_ids", "input_ids_2") if cfg.dual else ("input_ids",):
        assert batch[key].shape == (2, 16) and 1 <= batch[key].min() and batch[key].max() < cfg.vocab_size
    assert model(batch).shape == (2, cfg.n_classes)


def test_random_batch_dual_task():
    batch = configs.random_batch({"vocab_size": 5, "n_classes": 3, "dual": True}, 2, 7, torch.device("cpu"))
    assert batch["input_ids_2"].shape == (2, 7) and batch["mask_2"].all()
    assert 1 <= batch["input_ids"].min() and batch["input_ids"].max() < 5 and batch["label"].max() < 3
    again = configs.random_batch({"vocab_size": 5, "n_classes": 3, "dual": True}, 2, 7, torch.device("cpu"))
    assert all(torch.equal(batch[k], again[k]) for k in batch if k.startswith(("input", "mask", "label")))  # seeded
    assert batch["padded"] is False and batch["padded_2"] is False  # all positions real
    with pytest.raises(LRAError, match="vocab_size=1"):
        configs.random_batch({"vocab_size": 1, "n_classes": 2}, 2, 7, torch.device("cpu"))

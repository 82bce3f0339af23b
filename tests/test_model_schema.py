"""The model config's schema (lra.models.config) is the one list of the shared model keys."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from lra.errors import LRAError
from lra.models.config import BASE_KEYS, checked, split_model
from lra.run.config import CONF_DIR, compose_train


def test_base_yaml_holds_exactly_the_schema_keys():
    """A shared key is a ModelConfig field plus its default in conf/model/_base.yaml: neither without the other."""
    assert list(OmegaConf.load(CONF_DIR / "model" / "_base.yaml")) == list(BASE_KEYS)


def test_a_model_config_splits_into_the_shared_keys_and_its_mixer_options():
    cfg = OmegaConf.to_container(compose_train(["model=performer", "output_dir=/unused"]).model, resolve=True)
    base, options = split_model(cfg)
    assert base.mixer == "performer" and set(options) == set(cfg) - set(BASE_KEYS) and "num_features" in options
    assert set(base.encoder_options()) < set(BASE_KEYS) and "d_model" in base.encoder_options()


def test_a_missing_shared_key_is_one_line_naming_it():
    cfg = OmegaConf.to_container(compose_train(["model=fnet", "output_dir=/unused"]).model, resolve=True)
    del cfg["norm_type"]
    with pytest.raises(LRAError, match=r"model\.norm_type is missing"):
        split_model(cfg)


def test_every_check_kind_names_keys():
    assert checked("positive") == ("model.n_layers", "model.d_model", "model.n_heads")
    assert checked("non_negative") == ("model.d_ff",) and checked("fraction") == ("model.dropout", "model.attn_dropout")

"""A mixer from outside the repository, selected by its dotted class path (`model.mixer=pkg.module.Class`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lra.errors import LRAError
from lra.models import build_model, count_parameters
from lra.run.config import compose_train
from tests.helpers import tiny_run_overrides

ROOT = Path(__file__).resolve().parent.parent

USER_MIXER = '''
import torch
from torch import nn

from lra.models.mixers import Mixer


class MeanMixer(Mixer):
    """Every position gets a projection of the mean of the real tokens, times `scale`."""

    uses_heads = False

    def __init__(self, d_model, n_heads, max_len, dropout, scale: float = 1.0):
        super().__init__(d_model, n_heads, max_len, dropout)
        self.proj = nn.Linear(d_model, d_model)
        self.scale = scale

    def forward(self, x, mask):
        weights = mask[..., None].to(x.dtype)
        mean = (x * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1.0)
        return self.scale * self.proj(mean).expand_as(x)


class NotAMixer(nn.Module):
    def forward(self, x, mask):
        return x
'''


@pytest.fixture
def user_package(tmp_path: Path) -> Path:
    """A package `userpkg` outside the repository, with one mixer following the contract and one that does not."""
    package = tmp_path / "site" / "userpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "my_mixer.py").write_text(textwrap.dedent(USER_MIXER))
    return package.parent


def test_train_py_trains_a_mixer_from_a_dotted_path(user_package, listops_data, tmp_path):
    out = tmp_path / "run"
    overrides = [
        "model=transformer", "model.mixer=userpkg.my_mixer.MeanMixer", "+model.scale=0.5",
        *tiny_run_overrides(listops_data, out), "task.max_len=32", "model.n_heads=3",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(user_package)}
    proc = subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == 4 and 0.0 <= results["test_acc"] <= 1.0
    # d_model 32 is not divisible by 3 heads: the user's mixer declared uses_heads = False, so that is allowed.
    cfg = compose_train([*overrides[:3], "task.max_len=32", "model.n_layers=2", "model.d_model=32", "model.d_ff=64"])
    sys.path.insert(0, str(user_package))
    try:
        model = build_model(cfg.model, cfg.task)
    finally:
        sys.path.remove(str(user_package))
    mixer = model.encoder.blocks[0].mixer
    assert type(mixer).__name__ == "MeanMixer" and mixer.scale == 0.5
    assert results["n_params"] == count_parameters(model)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("userpkg.missing.MeanMixer", r"^model.mixer='userpkg.missing.MeanMixer' cannot be imported \(Module"),
        ("userpkg.my_mixer.Nope", r"^model.mixer='userpkg.my_mixer.Nope' cannot be imported \(AttributeError"),
        ("userpkg.my_mixer.NotAMixer", r"^model.mixer='userpkg.my_mixer.NotAMixer' is not a subclass of lra"),
        ("nomixer", r"^model.mixer='nomixer' is not a mixer; available: .*attention"),
    ],
)
def test_a_bad_mixer_path_is_one_line_naming_the_key(user_package, monkeypatch, path, message):
    monkeypatch.syspath_prepend(str(user_package))
    cfg = compose_train(["model=transformer", f"model.mixer={path}", "task.max_len=16"])
    with pytest.raises(LRAError, match=message) as err:
        build_model(cfg.model, cfg.task)
    assert "\n" not in str(err.value)


def test_an_unknown_option_of_a_user_mixer_names_its_key(user_package, monkeypatch):
    monkeypatch.syspath_prepend(str(user_package))
    cfg = compose_train(["model=transformer", "model.mixer=userpkg.my_mixer.MeanMixer", "+model.scal=2"])
    with pytest.raises(LRAError, match=r"^model.scal is not an option of mixer .*; its options: scale$"):
        build_model(cfg.model, cfg.task)


@pytest.mark.parametrize("pool", ["mean", "cls"])
@pytest.mark.parametrize("own_first_row", [False, True])
def test_a_mixer_that_changes_the_length_is_one_line(pool, own_first_row):
    """Checked in every layer, the last one of a CLS-pooled model too (which asks only for position 0)."""
    import torch

    from lra.models.encoder import Encoder
    from lra.models.mixers import Mixer, register
    from lra.models.mixers.registry import MIXERS

    class Shortens(Mixer):
        uses_heads = False

        def forward(self, x, mask):
            return x[:, 1:]

        if own_first_row:
            def first_row(self, x, mask, state=None):
                return x[:, :2]

    register("shortens_for_test")(Shortens)
    try:
        encoder = Encoder(["shortens_for_test"], 10, 12, 8, 1, 16, 0.0, 0.0, pool=pool)
        ids, mask = torch.randint(1, 10, (2, 12)), torch.ones(2, 12, dtype=torch.bool)
        length = 13 if pool == "cls" else 12
        shape = (2, 2, 8) if own_first_row and pool == "cls" else (2, length - 1, 8)
        method = "Shortens.first_row" if own_first_row and pool == "cls" else "Shortens"
        with pytest.raises(LRAError) as error:
            encoder(ids, mask)
        assert f"<locals>.{method} returned shape {shape} for input (2, {length}, 8); a mixer maps" in str(error.value)
    finally:
        MIXERS.pop("shortens_for_test")

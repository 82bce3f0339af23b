"""lra.bench.peers (`python -m lra.bench --peers`) at tiny sizes, against a stand-in for the Nystromformer authors'
LRA code (the real one is never vendored): the config it is handed, interleaved timing, ratios, one-line errors;
and lra.bench.hf_peers (`--peers hf`) against HF transformers where it is installed (the `[peers]` extra)."""

import json
import math
import sys
import textwrap

import pytest

from lra.bench import hf_peers, peers, speed

# A stand-in `model_wrapper.py`: the authors' ModelForSC interface (config dict; forward(ids, float mask, label)
# -> {"loss": per-example}), recording what it was given.
STAND_IN = textwrap.dedent('''
    import torch
    from torch import nn

    SEEN = []

    class ModelForSC(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config
            self.embed = nn.Embedding(config["vocab_size"], config["transformer_dim"])
            self.head = nn.Linear(config["transformer_dim"], config["num_classes"])

        def forward(self, input_ids_0, mask_0, label):
            SEEN.append((self.config, tuple(input_ids_0.shape), mask_0.dtype))
            logits = self.head((self.embed(input_ids_0) * mask_0[..., None]).mean(1))
            return {"loss": nn.functional.cross_entropy(logits, label, reduction="none")}
''')


@pytest.fixture
def peer_dir(tmp_path, monkeypatch):
    directory = tmp_path / "LRA_code"
    directory.mkdir()
    (directory / "model_wrapper.py").write_text(STAND_IN)
    monkeypatch.delitem(sys.modules, "model_wrapper", raising=False)
    yield directory
    sys.modules.pop("model_wrapper", None)
    if str(directory) in sys.path:
        sys.path.remove(str(directory))


def test_peers_time_both_sides_interleaved_and_write_ratios(peer_dir, tmp_path, capsys):
    argv = ["--peers", "--peer-dir", str(peer_dir), "--models", "linear_transformer", "--length", "48",
            "--batch", "2", "--pairs", "3", "--threads", "1", "--clock", "cpu", "--out", str(tmp_path / "out")]
    assert speed.main(argv) == 0
    payload = json.loads((tmp_path / "out" / "peers.json").read_text())
    (row,) = payload["results"]
    assert payload["kind"] == "peers" and payload["batch"] == 2 and row["length"] == 48 and payload["clock"] == "cpu"
    assert set(row["seconds_by_clock"]) == {"wall", "cpu"} and row["seconds"] == row["seconds_by_clock"]["cpu"]
    peer, ours = row["seconds"]["peer"], row["seconds"]["ours"]
    assert len(peer) == len(ours) == 3 and row["peer_s"] == sorted(peer)[1] and row["ours_s"] == sorted(ours)[1]
    assert row["pair_ratios"] == pytest.approx([p / o for p, o in zip(peer, ours, strict=True)])
    assert row["ratio"] == sorted(row["pair_ratios"])[1]  # the median of the pairs' ratios
    assert row["ours_params"] > row["peer_params"] > 0  # the stand-in is an embedding and a head
    config, shape, mask_dtype = sys.modules["model_wrapper"].SEEN[-1]
    assert config["attn_type"] == "linear" and config["max_seq_len"] == 48 and config["num_head"] == 2
    assert config["attention_dropout"] == 0.0 and config["transformer_hidden_dim"] == 128
    assert shape == (2, 48) and str(mask_dtype) == "torch.float32"  # L tokens: its CLS overwrites the last one
    assert "| linear transformer (elu + 1) |" in capsys.readouterr().out


def test_our_side_has_the_pair_sizes_and_sees_the_same_length_with_cls():
    model, task = peers.our_model(peers.PAIRS["nystromformer"], 250)
    assert task["max_len"] == 249  # + CLS = 250 positions in every layer
    blocks = model.encoder.blocks
    assert len(blocks) == 2 and blocks[0].mixer.num_landmarks == 125 and blocks[0].mixer.n_heads == 2
    assert blocks[0].mixer.qkv.in_features == 64 and blocks[0].mixer.conv.weight.shape == (2, 1, 35, 1)


def test_peer_errors_are_one_line(peer_dir, tmp_path, capsys):
    common = ["--peers", "--batch", "1", "--pairs", "1", "--threads", "1", "--out", str(tmp_path)]
    assert speed.main([*common, "--models", "linear_transformer"]) == 2
    assert "needs --peer-dir" in capsys.readouterr().err
    assert speed.main([*common, "--peer-dir", str(tmp_path), "--models", "linear_transformer"]) == 2
    assert "no model_wrapper.py" in capsys.readouterr().err
    assert speed.main([*common, "--peer-dir", str(peer_dir), "--models", "nope"]) == 2
    assert "no peer pair" in capsys.readouterr().err
    assert speed.main([*common, "--peer-dir", str(peer_dir), "--models", "nystromformer", "--length", "64"]) == 2
    assert "multiple of its 125 landmarks" in capsys.readouterr().err


# --peers hf: HF transformers' implementations (lra.bench.hf_peers), at tiny sizes; skipped without transformers.
HF_PAIRS = ("fnet-sublayer", "fnet", "fnet-own", "nystromformer", "bigbird", "reformer", "longformer")


def test_hf_peers_time_every_method_and_write_ratios(tmp_path, capsys):
    pytest.importorskip("transformers")
    argv = ["--peers", "hf", "--length", "256", "--batch", "1", "--pairs", "2", "--threads", "1",
            "--out", str(tmp_path)]
    assert speed.main(argv) == 0
    payload = json.loads((tmp_path / "peers_hf.json").read_text())
    assert payload["kind"] == "peers-hf" and payload["length"] == 256 and payload["transformers"]
    rows = payload["results"]
    assert [r["pair"] for r in rows] == [hf_peers.label(name) for name in HF_PAIRS]
    for r in rows:
        assert "error" not in r, r
        assert math.isfinite(r["peer_s"]) and math.isfinite(r["ours_s"]) and r["peer_s"] > 0 and r["ours_s"] > 0
        peer, ours = r["seconds"]["peer"], r["seconds"]["ours"]
        assert r["ratio"] == pytest.approx((peer[0] / ours[0] + peer[1] / ours[1]) / 2)  # the pairs' median
        assert len(peer) == len(ours) == 2 and r["differs"] and r["clock"] == "wall"
    sublayer, *models = rows
    assert sublayer["max_abs_diff"] < 1e-3  # the same map: Re(FFT_seq(FFT_hidden x))
    for r in models:  # the same sizes on both sides: parameter counts within a few percent
        assert 0.9 < r["params_ratio"] < 1.1, r
    assert "original_full" in rows[HF_PAIRS.index("bigbird")]["note"]  # 256 tokens: HF's BigBird falls back
    out = capsys.readouterr().out
    assert all(f"| {r['pair']} |" in out for r in rows) and "what differs:" in out


def test_hf_peers_without_transformers_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now raises ImportError
    assert speed.main(["--peers", "hf", "--length", "256", "--batch", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e '.[peers]'" in err
    assert not (tmp_path / "peers_hf.json").exists()


def test_hf_peers_argument_errors_are_one_line(tmp_path, capsys):
    common = ["--peers=hf", "--batch", "1", "--out", str(tmp_path)]
    assert speed.main([*common, "--models", "nope"]) == 2
    assert "no HF peer pair" in capsys.readouterr().err
    assert speed.main([*common, "--models", "reformer", "--length", "200"]) == 2
    assert "needs a multiple of 128" in capsys.readouterr().err
    assert speed.main(["--peers=nope", "--out", str(tmp_path)]) == 2
    assert "no such peer" in capsys.readouterr().err


def test_peer_source_reads_the_peers_flag():
    assert peers.peer_source(["--batch", "2"]) is None
    assert peers.peer_source(["--peers", "--batch", "2"]) == ("authors", ["--batch", "2"])
    assert peers.peer_source(["--batch", "2", "--peers", "hf"]) == ("hf", ["--batch", "2"])
    assert peers.peer_source(["--peers=hf", "--length", "256"]) == ("hf", ["--length", "256"])

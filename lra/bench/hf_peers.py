"""`python -m lra.bench --peers hf`: our training step against HF transformers' implementations of the same
methods, built from their config classes at our sizes (random init), timed interleaved in one process (HF, ours,
HF, ours, ...) so that a shared machine's load falls on both alike; the ratio HF s/step / ours s/step, the median
of the pairs' ratios, is printed per model (above 1: ours is faster); --clock cpu times this process's CPU time.

    pip install -e '.[peers]'    # HF transformers; imported only here, at benchmark time, never vendored
    python -m lra.bench --peers hf --threads 1 --batch 2 --length 1024

Pairs (`PAIRS`, each with what differs between the two sides):

- `fnet-sublayer`: the Fourier sublayer alone, FNetBasicFourierTransform against `lra.models.mixers.fourier.
  fourier_mix`, on the same x [batch, length, 64]: forward, a fixed random projection of the output as the loss,
  backward to x (no parameters, so no optimizer). The record has their outputs' largest difference.
- `fnet-own`: HF's FNetForSequenceClassification against ours as FNet's own code builds it (`model.block=fnet
  model.init=fnet model.head=linear`, which computes HF's FNetModel given its weights): the like-for-like FNet pair.
- whole models, `<Name>ForSequenceClassification` against our conf/model: `fnet`, `nystromformer`, `bigbird`
  (attention_type="block_sparse"), `reformer` (attn_layers all "lsh"), `longformer` (CLS global): embeddings,
  2 layers, d 64, FFN 128 (GELU), 2 heads, dropout 0.1, attention dropout 0, learned positions, a classification
  head on position 0, cross-entropy, backward, AdamW.

`--compile`: ours with `model.compile=true` (torch.compile per block), HF eager.

Both sides see --length positions in every layer: ours gets length - 1 tokens and prepends its CLS, HF gets length
tokens and reads position 0. Random tokens in [1, 257) (the Text task's bytes; HF's pad id is set to 0, which never
occurs), all real (attention masks all ones), batch --batch. Parameter counts are printed beside the times.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from lra.bench.cli import run
from lra.bench.configs import random_batch
from lra.bench.peers import SIZES, add_clock_option, build_ours, interleaved, summary, training_step
from lra.bench.record import environment, write_json
from lra.errors import LRAError
from lra.models import count_parameters
from lra.models.mixers.fourier import fourier_mix

INSTALL = "pip install -e '.[peers]'"
LANDMARKS = 64  # Nystromformer landmarks (HF's default); the length must be a multiple (HF reshapes into segments)
BLOCK = 64  # BigBird block size (HF's default and the LRA release's)
RANDOM_BLOCKS = 3  # BigBird random key blocks per query block
CHUNK = 128  # Reformer LSH chunk length; HF needs the length a multiple of it in training
WINDOW = 256  # Longformer window: |i - j| <= 128 on both sides (HF attention_window=256; HF pads to a multiple)


def import_transformers():
    """HF transformers, with its logging quietened; one line naming the extra when it is not installed."""
    try:
        import transformers
    except ImportError:
        raise LRAError(f"--peers hf needs HF transformers, which is not installed: {INSTALL}") from None
    transformers.logging.set_verbosity_error()  # e.g. BigBird's "changing attention type" notice, printed per call
    return transformers


def bert_sizes(vocab: int, heads: bool = True) -> dict:
    """`SIZES` in the keys that HF's BERT-like configs share."""
    sizes = {
        "vocab_size": vocab, "hidden_size": SIZES["d_model"], "num_hidden_layers": SIZES["n_layers"],
        "intermediate_size": SIZES["d_ff"], "hidden_act": "gelu", "hidden_dropout_prob": SIZES["dropout"],
        "type_vocab_size": 1, "pad_token_id": 0, "num_labels": 2,
    }
    if heads:
        sizes.update(num_attention_heads=SIZES["n_heads"], attention_probs_dropout_prob=SIZES["attn_dropout"])
    return sizes


def hf_fnet(T, length: int, vocab: int):
    config = T.FNetConfig(**bert_sizes(vocab, heads=False), max_position_embeddings=length,
                          use_tpu_fourier_optimizations=False)
    return T.FNetForSequenceClassification(config)


def hf_fnet_own(T, length: int, vocab: int):
    """HF's FNet as the f_net code: tanh GELU, 4 token-type rows. HF's default `gelu_new` computes that GELU in
    Python tensor ops (about 5x this whole step's time at L 1024, d 64 on one CPU thread); `gelu_pytorch_tanh` is
    the same function as one kernel, as ours, so the pair compares the models and not the activation's code."""
    sizes = {**bert_sizes(vocab, heads=False), "hidden_act": "gelu_pytorch_tanh", "type_vocab_size": 4}
    config = T.FNetConfig(**sizes, max_position_embeddings=length, use_tpu_fourier_optimizations=False)
    return T.FNetForSequenceClassification(config)


def hf_nystromformer(T, length: int, vocab: int):
    config = T.NystromformerConfig(**bert_sizes(vocab), max_position_embeddings=length, segment_means_seq_len=length,
                                   num_landmarks=LANDMARKS, conv_kernel_size=35)
    return T.NystromformerForSequenceClassification(config)


def hf_bigbird(T, length: int, vocab: int):
    config = T.BigBirdConfig(**bert_sizes(vocab), max_position_embeddings=length, attention_type="block_sparse",
                             block_size=BLOCK, num_random_blocks=RANDOM_BLOCKS)
    return T.BigBirdForSequenceClassification(config)


def reformer_buckets(length: int) -> int:
    """Buckets per hash round: 2 length / chunk, HF's recommended number (even, as both sides need)."""
    return max(2, 2 * length // CHUNK)


def hf_reformer(T, length: int, vocab: int):
    config = T.ReformerConfig(
        vocab_size=vocab, hidden_size=SIZES["d_model"], num_attention_heads=SIZES["n_heads"],
        attention_head_size=SIZES["d_model"] // SIZES["n_heads"], feed_forward_size=SIZES["d_ff"],
        attn_layers=["lsh"] * SIZES["n_layers"], hidden_act="gelu", hidden_dropout_prob=SIZES["dropout"],
        lsh_attention_probs_dropout_prob=SIZES["attn_dropout"], lsh_attn_chunk_length=CHUNK,
        lsh_num_chunks_before=1, lsh_num_chunks_after=0, num_buckets=reformer_buckets(length), num_hashes=1,
        axial_pos_embds=False, max_position_embeddings=length, is_decoder=False, pad_token_id=0, num_labels=2,
    )
    return T.ReformerForSequenceClassification(config)


def hf_longformer(T, length: int, vocab: int):
    # Positions count from pad_token_id + 1 (RoBERTa's scheme), so the table needs length + 1 rows.
    config = T.LongformerConfig(**bert_sizes(vocab), max_position_embeddings=length + 1,
                                attention_window=[WINDOW] * SIZES["n_layers"])
    return T.LongformerForSequenceClassification(config)


def cls_global(ids: torch.Tensor) -> dict:
    """Longformer's extra input: global attention on position 0 (ours: `n_global` 1, the CLS)."""
    mask = torch.zeros_like(ids)
    mask[:, 0] = 1
    return {"global_attention_mask": mask}


def bigbird_ran(model) -> str:
    ran = model.bert.attention_type
    if ran == "block_sparse":
        return "HF ran block_sparse"
    return (f"HF ran {ran}: BigBird switches to full attention at length <= (5 + 2 x {RANDOM_BLOCKS} random) x "
            f"{BLOCK} = {(5 + 2 * RANDOM_BLOCKS) * BLOCK}")


@dataclass(frozen=True)
class HFPair:
    """Our conf/model `ours` with `options(length)`, against the HF model that `hf(transformers, length, vocab)`
    builds; `inputs(ids)` are HF's inputs beyond input_ids and an all-ones attention_mask; `ran(model)`, after the
    timing, says which path HF took where it has several."""

    label: str
    ours: str
    hf: Callable
    differs: str
    options: Callable[[int], dict] = lambda length: {}
    inputs: Callable[[torch.Tensor], dict] = lambda ids: {}
    ran: Callable | None = None
    multiple: int = 1  # the length must be a multiple of this (an HF requirement)
    mask: bool = True  # HF's forward takes attention_mask


SUBLAYER = "fnet-sublayer"
SUBLAYER_LABEL = "FNet Fourier sublayer (fwd + bwd)"
SUBLAYER_DIFFERS = (
    "same map Re(FFT_seq(FFT_hidden x)); HF: torch.fft.fftn over both axes (a full complex 2-D FFT), autograd "
    "through the complex tensors; ours: rfft2 plus one gather by Hermitian symmetry, float32, backward = the same "
    "real map (it is self-adjoint); neither masks"
)

PAIRS = {
    SUBLAYER: None,  # timed by `bench_sublayer`
    "fnet": HFPair(
        "FNet (whole model)", "fnet", hf_fnet, mask=False,
        differs="both post-LN and unmasked, our Fourier as in fnet-sublayer; HF: BERT embeddings (token type, "
        "LayerNorm, then a d x d projection), dropout only in embeddings and after each FFN, pooler dense + tanh on "
        "position 0 then a linear classifier; ours: token + position embeddings, a learned CLS vector, dropout "
        "after the mixer and inside and after the FFN, head Dense(128) -> ReLU -> Dense",
    ),
    "fnet-own": HFPair(
        "FNet, its own code's block (whole model)", "fnet", hf_fnet_own, mask=False,
        options=lambda length: {"block": "fnet", "init": "fnet", "head": "linear"},
        differs="the same model on both sides (ours: model.block=fnet model.init=fnet model.head=linear, which "
        "computes HF's FNetModel weight for weight, tests/test_fnet_block.py): embeddings with a token-type row, "
        "LayerNorm and a d x d projection, dropout in the embeddings and after each FFN only, tanh GELU, LN eps "
        "1e-12, tanh pooler on position 0, a linear classifier; HF also drops out before its classifier and reads "
        "a token at position 0 where ours prepends a learned CLS vector (d parameters more); our Fourier as in "
        "fnet-sublayer",
    ),
    "nystromformer": HFPair(
        f"nystromformer ({LANDMARKS} landmarks, conv 35)", "nystromformer", hf_nystromformer,
        options=lambda length: {"num_landmarks": LANDMARKS, "conv_kernel_size": 35}, multiple=LANDMARKS,
        differs="HF: post-LN BERT blocks with embedding LayerNorm, q, k, v with biases, q and k each scaled by "
        "d^-1/4, landmarks by reshaping the whole sequence (length fixed by segment_means_seq_len, a multiple of the "
        "landmarks, pads inside segments), the mask only on kernel 3 (landmark queries x keys), one pinv scale "
        "over the whole batch, Conv2d on V; ours: pre-LN, bias-free fused qkv, segments over each row's real "
        "tokens, masked landmarks, a pinv scale per matrix, the same conv as banded matmuls; both 6 pinv iterations",
    ),
    "bigbird": HFPair(
        f"bigbird (block {BLOCK}, {RANDOM_BLOCKS} random)", "bigbird", hf_bigbird,
        options=lambda length: {"block_size": BLOCK, "n_random": RANDOM_BLOCKS, "n_global_blocks": 1},
        ran=bigbird_ran,
        differs=f"HF: post-LN, q, k, v with biases, the first and the last block global, random blocks redrawn by "
        f"numpy at every training forward (seeded with the layer index, so the same ones), full attention instead "
        f"at length <= {(5 + 2 * RANDOM_BLOCKS) * BLOCK}, pads to a block multiple; ours: pre-LN, bias-free qkv, "
        "only the first block global (it holds CLS), random blocks drawn once per layer at construction",
    ),
    "reformer": HFPair(
        f"reformer (LSH, 1 hash, chunk {CHUNK})", "reformer", hf_reformer,
        options=lambda length: {"n_hashes": 1, "bucket_size": CHUNK, "n_buckets": reformer_buckets(length)},
        multiple=CHUNK,
        differs="HF: reversible residual layers (two d-wide streams, pre-LN branches, activations recomputed in "
        "the backward, final LayerNorm and head over 2d), bias-free output projection, a chunk looks back "
        "cyclically (the first at the last), length a multiple of the chunk in training, axial position embeddings "
        "turned off here (its default) for a learned table like ours; ours: plain pre-LN residuals, output "
        "projection with bias, no wrap-around; both shared-QK with unit keys, 2 L / chunk buckets, fresh rotations "
        "each step, self only when nothing else",
    ),
    "longformer": HFPair(
        f"longformer (window {WINDOW}, CLS global)", "longformer", hf_longformer, inputs=cls_global,
        options=lambda length: {"window": WINDOW, "n_global": 1, "separate_global": True},
        differs=f"HF: post-LN, RoBERTa embeddings (LayerNorm), q, k, v and the global q, k, v with biases, pads to "
        f"a multiple of the window ({WINDOW}), scores overlapping chunks of {WINDOW} queries x {WINDOW} keys (about "
        f"2 x {WINDOW} L scores per head); ours: pre-LN, bias-free qkv and global qkv, blocks of {WINDOW // 2} "
        f"queries x {3 * WINDOW // 2} keys (1.5 x {WINDOW} L); both |i - j| <= {WINDOW // 2} plus CLS global with "
        "its own projections",
    ),
}


def label(name: str) -> str:
    """The table's name for pair `name`."""
    return SUBLAYER_LABEL if name == SUBLAYER else PAIRS[name].label


def bench_sublayer(T, args: argparse.Namespace) -> dict:
    """FNetBasicFourierTransform against fourier_mix on one x: forward, <y, g>, backward to x."""
    from transformers.models.fnet.modeling_fnet import FNetBasicFourierTransform

    config = T.FNetConfig(hidden_size=SIZES["d_model"], max_position_embeddings=args.length,
                          use_tpu_fourier_optimizations=False)
    theirs = FNetBasicFourierTransform(config)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.length, SIZES["d_model"], generator=g, requires_grad=True)
    proj = torch.randn(args.batch, args.length, SIZES["d_model"], generator=g)
    with torch.no_grad():
        diff = (theirs(x)[0] - fourier_mix(x)).abs().max().item()

    def step(mix: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def once() -> None:
            (mix(x) * proj).sum().backward()
            x.grad = None

        return once

    seconds = interleaved({"peer": step(lambda t: theirs(t)[0]), "ours": step(fourier_mix)}, args.pairs, args.warmup)
    return record(SUBLAYER_LABEL, args.length, summary(seconds, args.clock), 0, 0, SUBLAYER_DIFFERS,
                  max_abs_diff=diff, note=f"outputs differ by at most {diff:.1e}")


def bench_pair(pair: HFPair, T, args: argparse.Namespace) -> dict:
    """Our model and HF's for `pair`, timed interleaved; a record with both medians and the ratio."""
    length = args.length
    torch.manual_seed(0)
    ours, task = build_ours(pair.ours, {**pair.options(length), "compile": args.compile}, length)
    ours.train()
    vocab = int(task["vocab_size"])
    batch = random_batch(task, args.batch, length - 1, torch.device("cpu"))
    torch.manual_seed(0)
    theirs = pair.hf(T, length, vocab).train()
    ids = torch.cat([torch.ones_like(batch["input_ids"][:, :1]), batch["input_ids"]], dim=1)  # position 0: "CLS"
    inputs = {"input_ids": ids, **pair.inputs(ids)}
    if pair.mask:
        inputs["attention_mask"] = torch.ones_like(ids)
    label = batch["label"]
    steps = {
        "peer": training_step(theirs, lambda: F.cross_entropy(theirs(**inputs).logits, label)),
        "ours": training_step(ours, lambda: F.cross_entropy(ours(batch), label)),
    }
    seconds = interleaved(steps, args.pairs, args.warmup)
    note = pair.ran(theirs) if pair.ran else ""
    return record(pair.label + (" (ours compiled)" if args.compile else ""), length, summary(seconds, args.clock),
                  count_parameters(theirs), count_parameters(ours), pair.differs, note=note, ours_compiled=args.compile)


def record(label: str, length: int, timing: dict, n_peer: int, n_ours: int, differs: str, **extra) -> dict:
    """`timing`: lra.bench.peers.summary's medians and ratios."""
    return {
        "pair": label, "peer": "hf-transformers", "length": length, **timing, "peer_params": n_peer,
        "ours_params": n_ours, "params_ratio": n_ours / n_peer if n_peer else None, "differs": differs, **extra,
    }


def format_rows(records: list[dict]) -> str:
    lines = ["| pair | HF s/step | ours s/step | HF/ours | HF params | ours params |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['pair']} | {r['error']} | | | | |")
            continue
        lines.append(f"| {r['pair']} | {r['peer_s']:.3g} | {r['ours_s']:.3g} | {r['ratio']:.2f} | "
                     f"{r['peer_params']:,} | {r['ours_params']:,} |")
    return "\n".join(lines)


def bench_hf(args: argparse.Namespace) -> dict:
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in PAIRS]
    if unknown:
        raise LRAError(f"--models {','.join(unknown)}: no HF peer pair; choose from {', '.join(PAIRS)}")
    for name in names:  # before the first measurement
        pair = PAIRS[name]
        if pair is not None and args.length % pair.multiple:
            raise LRAError(f"--length {args.length}: HF's {pair.ours} needs a multiple of {pair.multiple} "
                           f"(e.g. {math.lcm(LANDMARKS, CHUNK) * 8})")
    T = import_transformers()
    print(f"peers hf (transformers {T.__version__}): batch {args.batch}, length {args.length}, "
          f"{'ours compiled, ' if args.compile else ''}{args.warmup} warm-up step(s) each, median of {args.pairs} "
          f"interleaved pairs, {args.clock} clock, {torch.get_num_threads()} thread(s)", flush=True)
    records = []
    for name in names:
        try:
            r = bench_sublayer(T, args) if name == SUBLAYER else bench_pair(PAIRS[name], T, args)
        except (ImportError, AttributeError) as err:  # a transformers without this model
            r = {"pair": label(name), "error": f"not in transformers {T.__version__} ({err})"}
        records.append(r)
        if "error" in r:
            print(f"  {r['pair']}: {r['error']}", flush=True)
            continue
        print(f"  {r['pair']}: HF {r['peer_s']:.4f} s, ours {r['ours_s']:.4f} s, HF/ours {r['ratio']:.2f}, "
              f"params {r['peer_params']:,} vs {r['ours_params']:,}" + (f"; {r['note']}" if r.get("note") else ""),
              flush=True)
    print("\n" + format_rows(records) + "\n\nwhat differs:")
    for r in records:
        if "differs" in r:
            print(f"  {r['pair']}: {r['differs']}")
    payload = {"kind": "peers-hf", **environment(torch.device("cpu")), "transformers": T.__version__,
               "batch": args.batch, "length": args.length, "pairs": args.pairs, "warmup": args.warmup,
               "clock": args.clock, "ours_compiled": args.compile, "results": records}
    path = Path(args.out) / "peers_hf.json"
    write_json(path, payload)
    print(f"wrote {path}")
    return payload


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lra.bench --peers hf", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(PAIRS), help="comma-separated pairs: " + ", ".join(PAIRS))
    p.add_argument("--length", type=int, default=1024,
                   help=f"positions every layer sees, CLS included (a multiple of {math.lcm(LANDMARKS, CHUNK)} "
                   "for nystromformer and reformer)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--pairs", type=int, default=5, help="interleaved (HF, ours) timings; medians reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each side first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--compile", action="store_true",
                   help="ours with model.compile=true (torch.compile per block; compiled in the warm-up); HF eager")
    add_clock_option(p)
    p.add_argument("--out", default="outputs/bench", help="directory for peers_hf.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(lambda: bench_hf(args), args.threads)


if __name__ == "__main__":
    sys.exit(main())

"""Measurement tools, one module and one command line each (results are JSON, into `--out`):

    python -m lra.bench              training steps/s and peak memory vs length per model (lra.bench.speed)
    python -m lra.bench.mixing       the Fourier-mixing paths, forward + backward
    python -m lra.bench.loader       training batches/s of a task's DataModule
    python -m lra.bench.prep_time    one-off data preparation time per task, at realistic scale
    python -m lra.bench.params       parameter count of every model config against the LRA 10% rule
"""

"""Every module command that the README and the Makefile name starts and answers --help (the runs themselves are
tested beside their modules)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

COMMANDS = {
    "lra.bench": "--models",
    "lra.bench.mixing": "--hidden",
    "lra.bench.loader": "--data-dir",
    "lra.bench.prep_time": "--work",
    "lra.bench.params": "--summary",
    "lra.leaderboard": "--wandb",
    "lra.probe.locality": "--windows",
}


def test_every_command_answers_help():
    procs = {
        module: subprocess.Popen([sys.executable, "-m", module, "--help"], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        for module in COMMANDS
    }
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"python -m {module} --help: {err[-2000:]}"
        assert f"python -m {module}" in out and COMMANDS[module] in out, module

"""Every module command that the README, the pages it links and the Makefile name starts and answers --help (the
runs themselves are tested beside their modules)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT

COMMANDS = {
    "data_prep.download": "--hf-cache",
    "data_prep.listops": "--max-length",
    "data_prep.pathfinder": "--difficulty",
    "lra.bench": "--models",
    "lra.bench.gpu": "--smoke",
    "lra.bench.scan": "--states",
    "lra.bench.mixing": "--hidden",
    "lra.bench.loader": "--data-dir",
    "lra.bench.prep_time": "--work",
    "lra.bench.params": "--summary",
    "lra.leaderboard": "--wandb",
    "lra.leaderboard.health": "--steps",
    "lra.probe.locality": "--windows",
}
# Tools the pages name that are not this project's commands.
NOT_OURS = {"pip", "pytest", "venv"}


def named_commands() -> set[str]:
    """`python -m <module>` (and the Makefile's `$(BIN)/python -m <module>`) wherever a reader is told to type it."""
    pages = [ROOT / "README.md", ROOT / "Makefile", ROOT / "benchmarks" / "README.md", ROOT / "results" / "README.md",
             *(ROOT / "docs").glob("*.md")]
    text = "\n".join(page.read_text() for page in pages)
    return {m for m in re.findall(r"python -m ([A-Za-z_][\w.]*\w)(?![\w.<])", text)} - NOT_OURS


def test_every_named_command_is_checked():
    assert named_commands() - set(COMMANDS) == set(), "add these modules to COMMANDS"


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

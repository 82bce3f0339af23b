"""Published LRA numbers (docs/reference.md#published-accuracy), keyed by our model config names, for the leaderboard.

Accuracy is in percent; `None` is a reported FAIL (chance-level on Path-X). Speed and memory were measured on other
hardware (TPU v3, the FNet paper's GPUs), so they are context for our numbers, never a like-for-like comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Task config names (conf/task/<name>.yaml) in the LRA paper's column order, and their printed names.
TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")
AVERAGE_TASKS = TASKS[:5]  # LRA's average leaves Path-X out (every model in the LRA paper failed it)
TASK_LABELS = {
    "listops": "ListOps", "text": "Text", "retrieval": "Retrieval", "image": "Image", "pathfinder": "Pathfinder",
    "pathx": "Path-X",
}
FAIL = "FAIL"

LRA = "LRA paper (Tay et al. 2021; the LRA release code, ours: model.impl=release)"
FNET = "FNet paper (Lee-Thorp et al. 2021; its own implementations, ours: model.impl=paper)"
S4 = "S4 paper (Gu et al. 2022, updated results)"
MEGA = "Mega paper (Ma et al. 2023)"


@dataclass(frozen=True)
class PublishedAccuracy:
    """One row of a paper's LRA table."""

    label: str  # the model's name in the paper's table
    model: str  # our conf/model/<model>.yaml
    source: str
    accuracy: dict[str, float | None]  # task -> test accuracy %; None = FAIL
    average: float  # the paper's own average, over `average_over` tasks
    average_over: int = 5
    primary: bool = True  # our runs of `model` are compared with this row (False: another report of the same model)
    note: str = ""

    def text(self, task: str) -> str:
        """The table cell: the number, FAIL, or '' when the paper has no such column."""
        if task not in self.accuracy:
            return ""
        value = self.accuracy[task]
        return FAIL if value is None else f"{value:.2f}"

    def average5(self) -> float | None:
        """Mean over the 5 LRA tasks, recomputed (S4 and Mega report a 6-task average instead)."""
        values = [self.accuracy.get(task) for task in AVERAGE_TASKS]
        if any(value is None for value in values):
            return None
        return sum(values) / len(values)


def _row(label, model, source, values, average, **extra) -> PublishedAccuracy:
    return PublishedAccuracy(label, model, source, dict(zip(TASKS, values, strict=True)), average, **extra)


ACCURACY: tuple[PublishedAccuracy, ...] = (
    _row("Transformer (LRA)", "transformer", LRA, (36.37, 64.27, 57.46, 42.44, 71.40, None), 54.39),
    _row("Local Attention", "local", LRA, (15.82, 52.98, 53.39, 41.46, 66.63, None), 46.06),
    _row("Sparse Trans.", "sparse", LRA, (17.07, 63.58, 59.59, 44.24, 71.71, None), 51.24),
    _row("Longformer", "longformer", LRA, (35.63, 62.85, 56.89, 42.22, 69.71, None), 53.46),
    _row("Linformer", "linformer", LRA, (35.70, 53.94, 52.27, 38.56, 76.34, None), 51.36),
    _row("Reformer", "reformer", LRA, (37.27, 56.10, 53.40, 38.07, 68.50, None), 50.67),
    _row("Sinkhorn Trans.", "sinkhorn", LRA, (33.67, 61.20, 53.83, 41.23, 67.45, None), 51.48),
    _row("Synthesizer", "synthesizer", LRA, (36.99, 61.68, 54.67, 41.61, 69.45, None), 52.88),
    _row("BigBird", "bigbird", LRA, (36.05, 64.02, 59.29, 40.83, 74.87, None), 55.01),
    _row("Linear Trans.", "linear_transformer", LRA, (16.13, 65.90, 53.09, 42.34, 75.30, None), 50.55),
    _row("Performer", "performer", LRA, (18.01, 65.40, 53.82, 42.77, 77.05, None), 51.41),
    _row(
        "Transformer (FNet paper re-run)", "transformer", FNET, (36.06, 61.54, 59.67, 41.51, 80.38, None), 55.83,
        primary=False,
    ),
    _row(
        "Linear mixing (FNet paper)", "linear", FNET, (33.75, 53.35, 58.95, 41.04, 83.69, None), 54.16,
        note="unconfirmed",
    ),
    _row("FNet", "fnet", FNET, (35.33, 65.11, 59.61, 38.67, 77.80, None), 55.30),
    _row("S4 (updated)", "s4", S4, (59.60, 86.82, 90.90, 88.65, 94.20, 96.35), 86.09, average_over=6),
    _row("Mega", "mega", MEGA, (63.14, 90.43, 91.25, 90.44, 96.01, 97.98), 88.21, average_over=6),
)


def primary(model: str) -> PublishedAccuracy | None:
    """The published row that runs of our `model` are compared with (the LRA paper's where it has one)."""
    return next((row for row in ACCURACY if row.model == model and row.primary), None)


@dataclass(frozen=True)
class PublishedEfficiency:
    """One model's published training speed or peak memory against sequence length."""

    label: str
    model: str
    source: str
    setting: str  # what was measured where
    metric: str  # steps_per_s | peak_memory_gb
    values: dict[int, float | None] = field(default_factory=dict)  # sequence length -> value; None = out of memory


LRA_SETTING = "byte-level Text, batch 32, TPU v3"
FNET_SETTING = "Text, GPU"


def _lra(label: str, model: str, metric: str, values) -> PublishedEfficiency:
    lengths = (1024, 2048, 3072, 4096)
    return PublishedEfficiency(label, model, LRA, LRA_SETTING, metric, dict(zip(lengths, values, strict=True)))


def _fnet(label: str, model: str, values) -> PublishedEfficiency:
    lengths = (512, 1024, 2048, 4096, 8192)
    memory = dict(zip(lengths, values, strict=True))
    return PublishedEfficiency(label, model, FNET, FNET_SETTING, "peak_memory_gb", memory)


EFFICIENCY: tuple[PublishedEfficiency, ...] = (
    _lra("Transformer", "transformer", "steps_per_s", (8.1, 4.9, 2.3, 1.4)),
    _lra("Performer", "performer", "steps_per_s", (9.5, 9.4, 8.7, 8.0)),
    _lra("Linformer", "linformer", "steps_per_s", (9.3, 9.1, 8.5, 7.7)),
    _lra("Linear Trans.", "linear_transformer", "steps_per_s", (9.1, 9.3, 8.6, 7.8)),
    _lra("Transformer", "transformer", "peak_memory_gb", (0.85, 2.65, 5.51, 9.48)),
    _fnet("Transformer", "transformer", (1.6, 4.0, 12.2, None, None)),
    _fnet("FNet", "fnet", (0.8, 1.3, 2.2, 3.9, 7.4)),
    _fnet("Performer", "performer", (1.1, 1.9, 3.1, 5.5, 10.4)),
)


def efficiency(model: str, metric: str, source: str = LRA) -> PublishedEfficiency | None:
    return next((e for e in EFFICIENCY if e.model == model and e.metric == metric and e.source == source), None)

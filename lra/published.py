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
S4D = "S4D paper (Gu et al. 2022), as tabulated by Solozabal et al. 2025 (arXiv 2508.20441, Table 1)"
LRU = "LRU paper (Orvieto et al. 2023, Table 3)"
NYSTROM = "Nystromformer paper (Xiong et al. 2021; its 2-layer PyTorch protocol)"
BUTTERFLY = "SamsungLabs/Butterfly_Acc (the Nystromformer protocol)"
SKYFORMER = "Skyformer paper (Chen et al. 2021; mean of 3 seeds)"
XFORMERS = "xformers LRA benchmark (BENCHMARKS.md; config_nystrom.json)"

# The protocol (our experiment group, conf/experiment/<recipe>/) each source's numbers were trained under. A run is
# compared only with rows of its own recipe (results.json `recipe`, e.g. nystrom/listops -> nystrom); `custom` (no
# experiment) and recipes without a table have none.
RECIPE_OF_SOURCE = {
    LRA: "lra", FNET: "fnet", S4: "s4", S4D: "s4", LRU: "s4", MEGA: "mega", NYSTROM: "nystrom", BUTTERFLY: "nystrom",
    SKYFORMER: "skyformer", XFORMERS: "xformers",
}
RECIPES = {
    "lra": "the LRA release (experiment=lra/<task>)",
    "fnet": "the FNet paper's LRA runs (experiment=fnet/<task>)",
    "s4": "the S4 authors' recipes; the LRU paper's for model=lru (experiment=s4/<task>)",
    "nystrom": "Nystromformer's 2-layer d 64 protocol (experiment=nystrom/<task>)",
    "skyformer": "Skyformer's protocol: the Nystromformer model, 50k steps (experiment=skyformer/<task>)",
    "xformers": "xformers' config_nystrom protocol (experiment=xformers/<task>)",
    "fourier": "the Fourier Transformer's LRA code (experiment=fourier/<task>); its Table 1 not read here, so no "
    "published row (docs/reference.md#fourier-transformer-published-row)",
    "mega": "Mega's own recipes (no experiment group here)",
}


def recipe_family(recipe: str) -> str:
    """`nystrom/listops` -> `nystrom`: the protocol a run's recipe belongs to."""
    return recipe.split("/", 1)[0]


@dataclass(frozen=True)
class PublishedAccuracy:
    """One row of a paper's LRA table."""

    label: str  # the model's name in the paper's table
    model: str  # our conf/model/<model>.yaml (or the paper's name where we have no such model)
    source: str
    accuracy: dict[str, float | None]  # task -> test accuracy %; None = FAIL
    average: float | None  # the paper's own average over `average_over` tasks; None: our source prints none
    average_over: int = 5
    primary: bool = True  # our runs of `model` under this recipe are compared with this row (False: another report)
    note: str = ""

    @property
    def recipe(self) -> str:
        return RECIPE_OF_SOURCE[self.source]

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
    """`values` in TASKS order: six (Path-X included) or the five of the protocols that never ran Path-X."""
    tasks = TASKS if len(values) == len(TASKS) else AVERAGE_TASKS
    return PublishedAccuracy(label, model, source, dict(zip(tasks, values, strict=True)), average, **extra)


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
    # S4D-LegS is S4D with S4's HiPPO-LegS diagonal (not an ssm_init here); S4D-Lin's Path-X: not run (infeasible).
    _row("S4D-Lin", "s4d", S4D, (60.52, 86.97, 90.96, 87.93, 93.96), None, note="Path-X not run"),
    _row("S4D-Inv", "s4d", S4D, (60.18, 87.34, 91.09, 87.83, 93.78, 92.80), None, average_over=6, primary=False,
         note="ssm_init=inv"),
    _row("S4D-LegS", "s4d_legs", S4D, (60.47, 86.18, 89.46, 88.19, 93.06, 91.95), 84.89, average_over=6),
    _row("LRU", "lru", LRU, (60.2, 89.4, 89.9, 89.0, 95.1, 94.2), None, average_over=6),
    _row("Mega", "mega", MEGA, (63.14, 90.43, 91.25, 90.44, 96.01, 97.98), 88.21, average_over=6),
    # The small PyTorch protocols (docs/reference.md#small-protocols): five tasks each, no Path-X.
    _row("Transformer", "transformer", NYSTROM, (37.10, 65.02, 79.35, 38.20, 74.16), 58.77),
    _row("Reformer", "reformer", NYSTROM, (19.05, 64.88, 78.64, 43.29, 69.36), 55.04),
    _row("Linformer", "linformer", NYSTROM, (37.25, 55.91, 79.37, 37.84, 67.60), 55.59),
    _row("Performer", "performer", NYSTROM, (18.80, 63.81, 78.62, 37.07, 69.87), 53.63),
    _row("Nystromformer", "nystromformer", NYSTROM, (37.15, 65.52, 79.56, 41.58, 70.94), 58.95),
    _row("Transformer", "transformer", BUTTERFLY, (37.3, 63.7, 78.3, 37.9, 70.9), 57.6, primary=False,
         note="Image: 1 layer, d 32, CLS, lr 5e-4; Pathfinder: FFN 64, lr 1e-3"),
    _row("FNet", "fnet", BUTTERFLY, (36.5, 63.0, 77.9, 28.8, 66.0), 54.4,
         note="Image: 1 layer, d 32, CLS, lr 5e-4; Pathfinder: FFN 64, lr 1e-3"),
    _row("Self-attention", "transformer", SKYFORMER, (38.37, 61.95, 80.69, 40.57, 65.26), 57.37),
    _row("Kernelized attention", "kernelized", SKYFORMER, (38.78, 60.22, 81.77, 41.29, 70.73), 58.56),
    _row("Nystromformer", "nystromformer", SKYFORMER, (38.51, 64.83, 80.52, 41.30, 69.48), 58.93),
    _row("Linformer", "linformer", SKYFORMER, (37.45, 58.93, 78.19, 37.96, 60.93), 54.69),
    _row("Informer", "informer", SKYFORMER, (32.53, 62.64, 77.57, 38.10, 57.83), 53.73),
    _row("Performer", "performer", SKYFORMER, (38.02, 64.19, 80.04, 41.43, 66.30), 58.00),
    _row("Reformer", "reformer", SKYFORMER, (37.68, 62.93, 78.99, 48.87, 66.49), 58.99),
    _row("BigBird", "bigbird", SKYFORMER, (39.25, 63.86, 80.28, 43.16, 68.72), 59.05),
    _row("Skyformer", "skyformer", SKYFORMER, (38.69, 64.70, 82.06, 40.77, 70.73), 59.39),
    _row("Transformer", "transformer", XFORMERS, (37.5, 62.66, 79.24, 38.69, 70.37), 57.69),
    _row("Nystrom-128", "nystromformer", XFORMERS, (36.29, 63.24, 78.18, 42.86, 67.49), 57.61),
    _row("Favor-256 (Performer)", "performer", XFORMERS, (19.56, 62.76, 81.1, 36.09, 67.23), 53.35),
    _row("FourierMix (FNet)", "fnet", XFORMERS, (36.29, 60.72, 76.41, 36.53, 54.07), 52.8, note="10k ListOps steps"),
    _row("Linformer-seq/4", "linformer", XFORMERS, (36.69, 57.39, 76.41, 35.57, 65.12), 54.2),
)


def published_row(model: str, recipe: str) -> PublishedAccuracy | None:
    """The published row that runs of our `model` under `recipe` (or its family) are compared with: the recipe's
    primary row for that model, else another of the same recipe; None for `custom` and recipes without a table."""
    family = recipe_family(recipe)
    rows = [row for row in ACCURACY if row.model == model and row.recipe == family]
    return next((row for row in rows if row.primary), rows[0] if rows else None)


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

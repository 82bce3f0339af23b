"""Our runs beside the published LRA numbers: load (results.json, W&B) -> aggregate -> render (markdown, CSV) and
plot; `python -m lra.leaderboard` (lra.leaderboard.report) does all four."""

"""`python -m lra.leaderboard`: the report from every results.json under the run directories (`report.main`)."""

from lra.leaderboard.report import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Probes that re-evaluate a trained model under a change, to measure what it relies on (docs/locality.md)."""

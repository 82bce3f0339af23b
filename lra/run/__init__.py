"""One training run: config composition and checks, the LightningModule, callbacks, checkpoints, results.json."""

"""Training glue: optimizer recipe, LightningCLI wiring, callbacks."""

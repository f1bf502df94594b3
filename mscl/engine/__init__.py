"""Training engine: case cache, patch sampling, loss, stage trainer, sliding-window inference, scoring."""

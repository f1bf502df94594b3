"""Training engine: loss, one-stage trainer, sliding-window inference, metrics."""

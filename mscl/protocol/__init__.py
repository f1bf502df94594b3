"""The continual protocol: domain orders, the stage loop that fills R, and continual metrics."""

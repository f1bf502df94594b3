"""Replay memory stores: the MemoryBackend contract and its registered backends (the policy: strategies/)."""

"""Replay memory: the MemoryBackend contract, its registered backends and the replay policy."""

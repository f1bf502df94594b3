"""Shipped experiment presets: tiny (CI), quick (CPU demo), paper (the paper's settings)."""

"""An mscl plugin: a strategy, a metric and a memory backend registered through entry points."""

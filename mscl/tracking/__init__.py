"""MLflow tracking: runs, params, metrics, artifacts, and the queries the reporter uses."""

"""MLflow helpers: tracking store, run logging, model registry. Only this package talks to MLflow."""

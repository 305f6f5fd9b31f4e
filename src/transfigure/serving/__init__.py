"""BentoML service (``bentoml serve`` from the project root, declared in bentofile.yaml)."""

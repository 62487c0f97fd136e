"""MLflow tracking: connecting to the store (``store``) and running an MLflow server (``server``).

Below training, evaluation and the registry, which all log to or read from the same store.
"""

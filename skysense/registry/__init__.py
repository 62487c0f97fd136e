"""MLflow model registry: pyfunc registration with lineage tags (``register``,
``export_registration``), gated promotion and rollback with aliases only (``policy``,
``promotion``, ``lock``), status (``status``), and a real ``mlflow server`` for tests (``server``).
"""

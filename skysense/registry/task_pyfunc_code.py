"""The code file MLflow logs as the task-model pyfunc ("models from code"; nothing pickled)."""

import mlflow.models

from skysense.registry.task_pyfunc import SkySenseTaskModel

mlflow.models.set_model(SkySenseTaskModel())

"""The code file MLflow logs as the SkySense pyfunc ("models from code").

``register_export`` passes this file's path as ``python_model``, so MLflow stores this source
file instead of a cloudpickled object; loading the model runs it, which sets the model to a fresh
:class:`~skysense.registry.pyfunc.SkySenseEmbedder` (weights from the ``export`` artifact, read
with safetensors).
"""

import mlflow.models

from skysense.registry.pyfunc import SkySenseEmbedder

mlflow.models.set_model(SkySenseEmbedder())

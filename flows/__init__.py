"""Prefect flows of the SkySense platform: thin orchestration over the ``skysense`` stages.

- :mod:`flows.pipeline`: sample or ingest -> validate -> chip -> train -> evaluate -> register ->
  promote, each a task running its DVC stage (``pipeline.use_dvc``) or the library fan-out.
- :mod:`flows.ingest`: new scenes into the catalog, then the pipeline.
- :mod:`flows.predict`: batch inference with the champion over a list of scenes.

Import :mod:`flows.environment` (and call :func:`flows.environment.configure`) before Prefect:
it sets a project-local ``PREFECT_HOME`` and a long ephemeral-server start-up timeout.
"""

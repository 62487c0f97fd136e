"""Prefect flows of the SkySense platform: thin orchestration over the ``skysense`` stages.

- :mod:`flows.pipeline`: sample or ingest -> validate -> chip -> train -> evaluate -> register ->
  promote, each a task running its DVC stage (``pipeline.use_dvc``) or its command; chipping
  fans out over locations (:mod:`flows.fanout`) on the runner of :mod:`flows.runners`.
- :mod:`flows.ingest`: new scenes into the catalog, then the pipeline.
- :mod:`flows.predict`: batch inference with the champion over a list of scenes.

Import :mod:`flows.environment` (and call :func:`flows.environment.configure`) before Prefect:
it sets a project-local ``PREFECT_HOME`` and a long ephemeral-server start-up timeout.
"""

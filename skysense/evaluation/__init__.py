"""Frozen-encoder downstream evaluation against a random-init twin: features, probes, metrics,
tasks, report, and the ``skysense evaluate`` runner.
"""

"""Validation: raster profiling, great-expectations suites, quarantine and the gate."""

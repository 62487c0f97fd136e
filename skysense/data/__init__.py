"""Data: readers, the raster access policy, catalogs, co-registration, chipping, shards and
datasets; ``skysense.data.synthetic`` writes the bundled sample.
"""

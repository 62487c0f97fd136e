"""Production inference: physical-unit arrays to model batches (``batch``), dated input rasters on
one grid (``scene``), sliding windows and blending (``windows``), GeoTIFF prediction
(``predict``).
"""

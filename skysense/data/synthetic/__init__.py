"""The bundled synthetic world: deterministic multi-modal scenes written as real GeoTIFFs.

``landcover`` (classes: spectra, phenology, backscatter), ``noise`` (coherent random fields),
``hr_texture`` (0.3125 m rendering), ``scenes`` (places, layouts, time series), ``sample``
(the GeoTIFFs and their catalog) and ``downstream`` (the held-out classification and
segmentation chips). Everything here writes; the readers in :mod:`skysense.data` read what it
writes exactly as they read a team's own archive.
"""

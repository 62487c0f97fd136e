"""STAC ingest: a snapshot of STAC items (a saved ItemCollection) into a scene catalog.

- :mod:`.snapshot`: search a STAC API with pystac-client and save what it found, or read a saved
  ItemCollection (JSON, or newline-delimited items) with pystac;
- :mod:`.assets`: one item -> one acquisition draft of a modality (collection / platform rules,
  band assets from asset keys and ``eo:bands``, cloud mask, cloud filter, the Sentinel-2 DN
  offset, hrefs under the raster access policy), or the reason it cannot be used;
- :mod:`.cells`: the grid of locations (``data.stac.location_m`` cells aligned in each UTM zone)
  and which items cover each cell;
- :mod:`.ingest`: the whole step, writing ``catalog.yaml``, ``items.json`` and ``skipped.parquet``.
"""

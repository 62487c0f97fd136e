"""The bottom layer every other package builds on: modalities and sensors as data, errors and
exit codes, the sample/batch contract, settings base, lineage, and the file primitives (atomic
writes, safe output paths, file locks, the GeoTIFF writer, credential stripping). It imports no
other ``skysense`` package.
"""

"""Facts of satellite products: Sentinel-2 processing baselines and DN offsets, ``.SAFE`` folders."""

"""Facts of satellite products: Sentinel-2 processing baselines, DN offsets, ``.SAFE`` folders."""

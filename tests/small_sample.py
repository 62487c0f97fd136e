"""The smallest sample the end-to-end tests generate (`skysense data sample` overrides): one
pre-training and one held-out place of 32 px, two S2 and two S1 dates.
"""

SMALL_SAMPLE = [
    "--set", "data.sample.locations=1", "--set", "data.sample.heldout_locations=1",
    "--set", "data.sample.size_px=32", "--set", "data.sample.s2_dates=2",
    "--set", "data.sample.s1_dates=2",
]  # fmt: skip

"""``train_log.csv``: one header, every value under its own column across appends."""

from __future__ import annotations

import csv

from skysense.training.loop import append_log


def test_appends_keep_the_header_and_leave_missing_streams_empty(tmp_path):
    log = tmp_path / "train_log.csv"
    append_log(log, [{"step": 1, "loss": 2.0, "pixel_hr": 0.5, "pixel_s2": 0.7}])
    # a later checkpoint whose first step had no HR in its batch, and a key never seen before
    append_log(
        log,
        [
            {"step": 2, "loss": 1.5, "pixel_s2": 0.6},
            {"step": 3, "loss": 1.4, "pixel_hr": 0.4, "pixel_s2": 0.55, "new_key": 9.0},
        ],
    )
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["step", "loss", "pixel_hr", "pixel_s2"]
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["pixel_hr"] == "" and rows[1]["pixel_s2"] == "0.6"
    assert rows[2]["pixel_hr"] == "0.4" and rows[2]["pixel_s2"] == "0.55"


def test_first_write_takes_every_key_of_its_rows(tmp_path):
    log = tmp_path / "train_log.csv"
    append_log(log, [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "pixel_hr": 0.3}])
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["step", "loss", "pixel_hr"]
    assert rows[0]["pixel_hr"] == "" and rows[1]["pixel_hr"] == "0.3"

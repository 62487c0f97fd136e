"""Typed configuration: params.yaml parsing, overrides and error messages."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from skysense.cli import app
from skysense.config import SkySenseConfig, apply_overrides, dump_config, load_config
from skysense.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_match_defaults() -> None:
    """params.yaml is valid and mirrors the embedded defaults (no stale or missing keys)."""
    cfg = load_config(REPO / "params.yaml")
    assert cfg == SkySenseConfig()


def test_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(
        REPO / "params.yaml",
        ["train.zero_stage=3", "train.lr=0.001", "model.overrides={s2_depth: 2}"],
    )
    assert cfg.train.zero_stage == 3
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.model.overrides == {"s2_depth": 2}


def test_unknown_key_names_key_and_allowed(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump({"train": {"zero_stag": 3}}))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert str(bad) in msg and "train.zero_stag" in msg and "zero_stage" in msg


def test_bad_value_names_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"train.zero_stage.*0, 1, 2 or 3"):
        load_config(REPO / "params.yaml", ["train.zero_stage=7"])


def test_malformed_yaml_and_override(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(REPO / "params.yaml", ["train.zero_stage"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(bad)


def test_unknown_preset_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'skysense-giant'.*skysense-tiny"):
        load_config(REPO / "params.yaml", ["model.preset=skysense-giant"])


def test_dump_round_trips(tmp_path: Path) -> None:
    cfg = load_config(REPO / "params.yaml", ["train.steps=7"])
    p = tmp_path / "p.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


def test_cli_config_show() -> None:
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "config",
            "show",
            "--params",
            str(REPO / "params.yaml"),
            "--set",
            "train.nproc=1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert '"nproc": 1' in res.output
    res = runner.invoke(
        app, ["config", "show", "--params", str(REPO / "params.yaml"), "--set", "train.bogus=1"]
    )
    assert res.exit_code == 2
    assert "train.bogus" in res.output


def test_reading_params_does_not_import_torch():
    """Every stage command reads params.yaml first (the preset name is checked there): that must
    not pay torch's import, which the data and validation stages never use.
    """
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from skysense.config import load_config\n"
        "cfg = load_config(None, None)\n"
        "assert cfg.model.preset == 'skysense-tiny'\n"
        "assert 'torch' not in sys.modules, 'reading the config imported torch'\n"
        "from skysense.models import create_model, SkySense\n"
        "assert 'torch' in sys.modules and callable(create_model)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------
# issue 21 item 4: an empty or cut-short params file is an error, never "the defaults"
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   "])
def test_empty_params_file_is_an_error_not_the_defaults(tmp_path: Path, text: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(params)
    msg = str(err.value)
    assert str(params) in msg and "empty" in msg and "skysense config show --defaults" in msg


def test_params_file_cut_after_600_bytes_is_an_error_naming_the_line(tmp_path: Path) -> None:
    """The issue's reproduction: the first 600 bytes of params.yaml loaded as defaults."""
    whole = (REPO / "params.yaml").read_bytes()
    cut = tmp_path / "params.yaml"
    cut.write_bytes(whole[:600])
    line = whole[:600].count(b"\n") + 1
    with pytest.raises(
        ConfigError, match=rf"{cut}: (ends in the middle of line|not valid YAML at line) {line}\b"
    ):
        load_config(cut)


def test_params_file_cut_at_a_line_end_names_the_missing_sections(tmp_path: Path) -> None:
    lines = (REPO / "params.yaml").read_text().splitlines(keepends=True)
    cut = tmp_path / "params.yaml"
    at = next(i for i, ln in enumerate(lines) if ln.startswith("train:")) + 3
    cut.write_text("".join(lines[:at]))
    with pytest.raises(ConfigError) as err:
        load_config(cut)
    msg = str(err.value)
    assert (
        "eval, finetune, registry, predict, pipeline" in msg
        and "validation" not in msg.split("section(s)")[1][:12]
    )
    assert "`eval: {}`" in msg and "skysense config show --defaults > params.yaml" in msg


def test_no_prefix_of_params_yaml_loads_before_its_last_section(tmp_path: Path) -> None:
    """Every cut of the shipped file is an error: mid-line, or between lines before the last
    section starts (a cut between two lines of the last section is the documented limit).
    """
    whole = (REPO / "params.yaml").read_bytes()
    last_section = whole.rindex(b"\npipeline:") + 1
    cut = tmp_path / "params.yaml"
    ends = {i + 1 for i, b in enumerate(whole) if b == ord("\n")}
    mid_line = (n for n in range(1, len(whole) - 1, 37) if n not in ends or n <= last_section)
    offsets = sorted({*mid_line, *(e for e in ends if e <= last_section)})
    for n in offsets:
        cut.write_bytes(whole[:n])
        with pytest.raises(ConfigError):
            load_config(cut)
    assert len(offsets) > 150


def test_sections_named_empty_take_their_defaults(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("".join(f"{s}: {{}}\n" for s in SkySenseConfig.model_fields))
    assert load_config(params) == SkySenseConfig()
    params.write_text(
        "".join(f"{s}: {{}}\n" for s in SkySenseConfig.model_fields if s != "predict")
        + "train:\n  steps: 3\n".replace("train", "trainX")
    )
    with pytest.raises(ConfigError) as err:  # the value error and the missing section, both named
        load_config(params)
    assert "trainX" in str(err.value) and "section(s) predict" in str(err.value)


def test_params_that_do_not_parse_whole_name_the_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("paths: {}\ntrain:\n  steps: 3\n  lr: 0.1\n    seed: 0\n")
    with pytest.raises(ConfigError, match=rf"{params}: not valid YAML at line 5, column \d+"):
        load_config(params)
    params.write_text("train:\n  steps: 3\n  lr: 0.1\n  steps: 30\n")
    with pytest.raises(
        ConfigError,
        match=r"line 4, column 3: found duplicate key 'steps' \(first given at line 2\)",
    ):
        load_config(params)
    params.write_text("train: {}\n---\ntrain: {steps: 3}\n")
    with pytest.raises(ConfigError, match="not valid YAML at line 2"):
        load_config(params)


def test_config_show_defaults_writes_a_complete_params_file_unwrapped(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("")  # what `skysense config show > params.yaml` meets
    long_url = "/mnt/" + "/".join(["remote-storage-folder"] * 8)
    res = CliRunner().invoke(
        app, ["config", "show", "--defaults", "--set", f"pipeline.dvc_remote_url={long_url}"]
    )
    assert res.exit_code == 0, res.output
    (tmp_path / "params.yaml").write_text(res.stdout)
    cfg = load_config(tmp_path / "params.yaml")
    assert cfg.pipeline.dvc_remote_url == long_url and cfg.train == SkySenseConfig().train
    res = CliRunner().invoke(app, ["config", "show"])
    assert res.exit_code == 0 and long_url in res.stdout


# --------------------------------------------------------------------------------------------
# issue 21 item 10: NaN and infinity are rejected in every float of the typed config
# --------------------------------------------------------------------------------------------
NON_FINITE = [
    ("validation.gsd_m.s2=nan", "validation.gsd_m.s2"),
    ("train.min_lr=inf", "train.min_lr"),
    (
        "registry.policy.decide={linear_acc: {min_improvement: -.inf}}",
        "registry.policy.decide.linear_acc.min_improvement",
    ),
    ("registry.policy.no_regress={miou: .nan}", "registry.policy.no_regress.miou"),
    ("validation.ranges={s1_db: [-50, .inf]}", "validation.ranges.s1_db.1"),
    ("train.ema_momentum=[0.99, .nan]", "train.ema_momentum.1"),
    ("train.augment.crop_fraction=[-.inf, 1.0]", "train.augment.crop_fraction.0"),
    ("train.lr=.nan", "train.lr"),
    ("validation.sensors.s2.scale=.inf", "validation.sensors.s2.scale"),
    ("model.overrides={drop_path: .nan}", "overrides.drop_path"),
]


@pytest.mark.parametrize(("override", "key"), NON_FINITE)
def test_non_finite_override_is_rejected_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "params.yaml", [override])
    assert key in str(err.value) and ("finite" in str(err.value))


@pytest.mark.parametrize(("override", "key"), NON_FINITE)
def test_non_finite_value_in_params_file_is_rejected(
    tmp_path: Path, override: str, key: str
) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(apply_overrides(raw, [override]), sort_keys=False))
    text = params.read_text()
    assert (
        "nan" in text or "inf" in text
    )  # `nan`/`inf` (strings pydantic reads as floats) or .nan/.inf
    with pytest.raises(ConfigError) as err:
        load_config(params)
    assert str(params) in str(err.value) and key in str(err.value)


def test_nan_nodata_stays_allowed() -> None:
    """A raster's nodata value may be NaN (float rasters); validation compares it with isnan."""
    cfg = load_config(REPO / "params.yaml", ["validation.sensors.s1.nodata=.nan"])
    assert math.isnan(cfg.validation.sensors["s1"].nodata)


def test_cli_rejects_non_finite_override_with_usage_exit_code() -> None:
    res = CliRunner().invoke(
        app, ["config", "show", "--params", str(REPO / "params.yaml"), "--set", "train.min_lr=inf"]
    )
    assert res.exit_code == 2 and "train.min_lr" in res.output and "finite" in res.output

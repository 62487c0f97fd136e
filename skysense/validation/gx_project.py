"""The great-expectations project of a validation run: a file-backed GX context under ``--out``.

Layout: ``<out>/gx/`` holds the GX project (suites, validation definitions, checkpoints, stored
validation results) and ``<out>/data_docs/`` the Data Docs site, built once at the end of a run by
:meth:`GxProject.build_docs` for that run's results (not after every table: rendering the site is
about a third of GX's time; its views share compiled templates, see :mod:`.docs_views`). One pandas
data source (``skysense``) has one dataframe asset per table
(``rasters``, ``locations``, ``chips``) with a whole-dataframe batch definition; each table is
validated by one checkpoint run over the whole table (GX's per-run overhead is paid once per
table, not per raster). Results come back with ``result_format=COMPLETE`` and the table's id
column as ``unexpected_index_column_names``, so every failing row is known by its id. Analytics
and progress bars are off; nothing goes to the network.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from skysense.core.errors import ValidationFailed
from skysense.validation.docs_views import view_config
from skysense.validation.suites import Check, Suite

if TYPE_CHECKING:
    from great_expectations.data_context.store.store import DataDocsSiteConfigTypedDict

DATASOURCE = "skysense"
SITE = "local_site"


@dataclass
class CheckOutcome:
    """The result of one expectation over one table.

    Attributes:
        check: the check's name, severity its severity.
        success: True when no row failed.
        element_count: rows the expectation looked at (after its row condition).
        failing_ids: ids of the failing rows, in table order.
        reason: what the rule asks.
        observed: the profile columns that explain a failure.
        expectation_type: the GX expectation class, e.g. ``expect_column_values_to_be_between``.
    """

    table: str
    check: str
    severity: str
    success: bool
    element_count: int
    failing_ids: list[str]
    reason: str
    observed: list[str]
    expectation_type: str
    column: str | None = None


@dataclass
class TableResult:
    """All outcomes of one table's checkpoint run and how long it took (seconds)."""

    table: str
    outcomes: list[CheckOutcome] = field(default_factory=list)
    seconds: float = 0.0
    run_id: str = ""
    result_ids: list[Any] = field(default_factory=list)


class GxProject:
    """A file-backed GX context rooted at ``out_dir`` that validates profile tables (with
    ``failure_webhook``, each checkpoint posts its failures there:
    :mod:`skysense.validation.notification`).
    """

    def __init__(self, out_dir: Path, failure_webhook: str | None = None) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.actions: list[Any] = []
        if failure_webhook:  # GX's action list: failed runs post to the alerts' receiver
            from skysense.validation.notification import FailureWebhookAction

            self.actions.append(FailureWebhookAction(name="failure-webhook", url=failure_webhook))
        self.out_dir = Path(out_dir).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.docs_dir = self.out_dir / "data_docs"
        self.context = gx.get_context(mode="file", project_root_dir=str(self.out_dir))
        self.context.config.analytics_enabled = False
        self.context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        self.context.variables.save()

        site: dict[str, Any] = {
            "class_name": "SiteBuilder",
            "site_index_builder": {
                "class_name": "DefaultSiteIndexBuilder",
                "view": view_config(index=True),
            },
            "site_section_builders": {
                section: {"view": view_config()}
                for section in ("expectations", "validations", "profiling")
            },
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(self.docs_dir),
            },
        }
        # GX's TypedDict for a site lists only some keys (not site_section_builders)
        docs_site = cast("DataDocsSiteConfigTypedDict", site)
        if SITE in self.context.get_site_names():
            self.context.update_data_docs_site(SITE, docs_site)
        else:
            self.context.add_data_docs_site(SITE, docs_site)
        self.datasource = self.context.data_sources.add_or_update_pandas(DATASOURCE)

    def _batch_definition(self, table: str) -> Any:
        try:
            asset = self.datasource.get_asset(table)
        except LookupError:
            asset = self.datasource.add_dataframe_asset(table)
        try:
            return asset.get_batch_definition("whole")
        except KeyError:
            return asset.add_batch_definition_whole_dataframe("whole")

    def validate(self, suite: Suite, frame: pd.DataFrame) -> TableResult:
        """Run ``suite`` over ``frame`` through a checkpoint (results stored; docs built later).

        Raises:
            ValidationFailed: an expectation could not be evaluated (its GX error is named).
        """
        gx = self.gx
        started = time.perf_counter()
        gx_suite = gx.ExpectationSuite(
            name=f"skysense-{suite.table}",
            expectations=[c.expectation for c in suite.checks],
            meta={"notes": f"SkySense {suite.table} checks; severities in meta.severity"},
        )
        gx_suite = self.context.suites.add_or_update(gx_suite)
        # stored by checkpoints.add_or_update below (adding it here too doubles the store work)
        vdef = gx.ValidationDefinition(
            name=f"skysense-{suite.table}", data=self._batch_definition(suite.table), suite=gx_suite
        )
        checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"skysense-{suite.table}",
                validation_definitions=[vdef],
                actions=self.actions,
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": [suite.id_column],
                },
            )
        )
        # the store keeps the actions without their webhook URL (see FailureWebhookAction); run
        # with the ones of this process, which have it
        checkpoint.actions = list(self.actions)
        result = checkpoint.run(batch_parameters={"dataframe": _gx_safe(_narrow(suite, frame))})
        out = TableResult(
            suite.table, run_id=str(result.run_id), result_ids=list(result.run_results)
        )
        for vres in result.run_results.values():
            for res in vres.results:
                out.outcomes.append(self._outcome(suite, res))
        out.seconds = time.perf_counter() - started
        return out

    def _outcome(self, suite: Suite, res: Any) -> CheckOutcome:
        cfg = res.expectation_config
        check = _match(suite, cfg)
        if res.exception_info and any(
            (v or {}).get("raised_exception") for v in _exceptions(res.exception_info)
        ):
            msgs = "; ".join(
                str((v or {}).get("exception_message")) for v in _exceptions(res.exception_info)
            )
            raise ValidationFailed(
                f"great-expectations could not evaluate check {check.name!r} on the {suite.table} "
                f"table ({cfg.type}): {msgs}"
            )
        r = res.result or {}
        ids = [str(row[suite.id_column]) for row in r.get("unexpected_index_list") or []]
        return CheckOutcome(
            table=suite.table,
            check=check.name,
            severity=check.severity,
            success=bool(res.success),
            element_count=int(r.get("element_count") or 0),
            failing_ids=list(dict.fromkeys(ids)),
            reason=check.reason,
            observed=check.observed,
            expectation_type=cfg.type,
            column=cfg.kwargs.get("column"),
        )

    def build_docs(self, results: list[TableResult]) -> Path:
        """Render the Data Docs pages of these tables' results and the site index, once per run.

        Returns:
            The site's ``index.html``.
        """
        ids = [rid for r in results for rid in r.result_ids]
        self.context.build_data_docs(site_names=[SITE], resource_identifiers=ids or None)
        return self.docs_index()

    def docs_index(self) -> Path:
        """The Data Docs site's ``index.html``."""
        return self.docs_dir / "index.html"


def _exceptions(info: Any) -> list[dict[str, Any]]:
    if isinstance(info, dict) and "raised_exception" in info:
        return [info]
    if isinstance(info, dict):
        return [v for v in info.values() if isinstance(v, dict)]
    return []


def _match(suite: Suite, cfg: Any) -> Check:
    """The check an expectation configuration came from (``meta.key`` is its index)."""
    meta = cfg.meta or {}
    key = meta.get("key")
    if isinstance(key, int) and 0 <= key < len(suite.checks):
        return suite.checks[key]
    raise ValidationFailed(
        f"great-expectations returned a result for an unknown check {meta.get('check')!r}"
    )


def _narrow(suite: Suite, frame: pd.DataFrame) -> pd.DataFrame:
    """Only the columns the suite reads (GX copies and hashes what it is given)."""
    needed = {suite.id_column}
    for check in suite.checks:
        exp = check.expectation
        for attr in ("column", "column_A", "column_B"):
            if getattr(exp, attr, None):
                needed.add(getattr(exp, attr))
        needed.update(getattr(exp, "column_list", None) or [])
    return frame[[c for c in frame.columns if c in needed]]


def _gx_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with list columns as text (GX hashes cell values for some metrics)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            out[col] = out[col].map(lambda v: None if v is None else str(v))
    return out.reset_index(drop=True)

"""Data Docs views whose Jinja templates compile once per process, not once per page section.

GX gives every Data Docs section (expectations, validations, profiling, index) its own view and
Jinja environment, so each build compiles the same templates several times over (most of the
docs time for a small site). These views share one in-memory bytecode cache; the HTML they
render is GX's own. Used through the site's ``site_section_builders`` / ``site_index_builder``
``view`` settings in :mod:`.gx_project`.
"""

from __future__ import annotations

from typing import Any

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket

MODULE = __name__


class _SharedBytecode(BytecodeCache):
    """Compiled templates kept in memory for the life of the process (keyed by source checksum)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_CACHE = _SharedBytecode()


class SharedCachePageView(DefaultJinjaPageView):
    """GX's page view (suites, validation results) with the shared template cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _CACHE


class SharedCacheIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view with the shared template cache."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _CACHE


def view_config(index: bool = False) -> dict[str, str]:
    """The ``view`` entry of a Data Docs site section (or of its index builder)."""
    return {
        "module_name": MODULE,
        "class_name": "SharedCacheIndexPageView" if index else "SharedCachePageView",
    }

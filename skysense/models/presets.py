"""Model presets registry (filled in by the model package)."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, Any] = {}

"""STAC snapshots: search a STAC API and save what it found; read a saved snapshot.

A snapshot is a STAC ItemCollection (the JSON ``pystac-client``'s
``ItemSearch.item_collection().save_object()`` writes), or newline-delimited items (``.ndjson``,
one item per line, as ``stac-geoparquet`` and ``pypgstac`` exchange them). Saving the search
result first makes a rerun reproducible and lets DVC version the input of the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac

from skysense.core.atomic_files import write_text_atomic
from skysense.core.credentials import strip_credentials
from skysense.core.errors import SkySenseError


class StacSnapshotError(SkySenseError):
    """A STAC snapshot that cannot be read, or a STAC API search that failed."""


def search_snapshot(
    api_url: str,
    out_path: str | Path,
    collections: Sequence[str] | None = None,
    bbox: Sequence[float] | None = None,
    datetime: str | None = None,
    max_items: int | None = None,
    query: dict[str, Any] | None = None,
) -> Path:
    """Search a STAC API with pystac-client and save the items found as an ItemCollection.

    Args:
        api_url: the API's landing page (``https://host/stac/v1``).
        out_path: the snapshot file to write (JSON ItemCollection; written atomically).
        collections: collection ids to search.
        bbox: ``(west, south, east, north)`` in degrees.
        datetime: an RFC 3339 instant or interval (``2023-01-01/2023-12-31``).
        max_items: most items to fetch (None: all).
        query: extra ``query`` filter (e.g. ``{"eo:cloud_cover": {"lt": 60}}``).

    Returns:
        The snapshot path.

    Raises:
        StacSnapshotError: the API cannot be reached or answered with an error (URL shown
            without credentials).
    """
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    shown = strip_credentials(api_url)
    try:
        client = Client.open(api_url)
        search = client.search(
            collections=list(collections) if collections else None,
            bbox=list(bbox) if bbox else None,
            datetime=datetime,
            max_items=max_items,
            query=query,
        )
        found = search.item_collection()
    except (APIError, OSError, ValueError) as exc:
        raise StacSnapshotError(
            f"STAC API {shown}: search failed ({strip_credentials(str(exc))[:300]}); "
            "check the URL, the collections and that the server is up"
        ) from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("requests", "urllib3", "pystac_client"):
            raise
        raise StacSnapshotError(
            f"STAC API {shown}: cannot be reached ({type(exc).__name__}); check "
            "the URL and that the server is up"
        ) from None
    items = sorted(found.items, key=lambda it: (it.collection_id or "", it.id))
    return save_snapshot(items, out_path)


def save_snapshot(items: Sequence[pystac.Item], out_path: str | Path) -> Path:
    """Write items as one ItemCollection JSON file (atomically), in the given order."""
    out = Path(out_path)
    collection = pystac.ItemCollection([it.clone() for it in items], clone_items=False)
    write_text_atomic(out, json.dumps(collection.to_dict(transform_hrefs=False)) + "\n")
    return out


@dataclass
class Snapshot:
    """A snapshot's items, and the features that are not valid STAC items (``item_id``,
    ``check`` (``no_datetime`` or ``invalid_item``), ``reason``), each kept apart.
    """

    items: list[pystac.Item]
    invalid: list[dict[str, str]] = field(default_factory=list)


def load_snapshot(path: str | Path) -> Snapshot:
    """The items of a saved snapshot (ItemCollection JSON or newline-delimited items).

    Items come in the file's order. A feature pystac cannot read as an item (no datetime, no id)
    is listed in ``invalid`` with the reason; the others still load.

    Raises:
        StacSnapshotError: missing file, not JSON, not an ItemCollection.
    """
    p = Path(path)
    if not p.is_file():
        raise StacSnapshotError(
            f"{p}: STAC snapshot not found; pass --items FILE (an ItemCollection) "
            "or --api URL to search and save one"
        )
    text = p.read_text()
    try:
        if p.suffix.lower() in (".ndjson", ".jsonl"):
            dicts = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
            if isinstance(data, dict) and data.get("type") == "Feature":
                dicts = [data]
            elif isinstance(data, dict) and isinstance(data.get("features"), list):
                dicts = data["features"]
            else:
                raise StacSnapshotError(f"{p}: not a STAC ItemCollection (no 'features' list)")
    except json.JSONDecodeError as exc:
        raise StacSnapshotError(
            f"{p}: not JSON ({exc.msg} at line {exc.lineno}); save the snapshot again"
        ) from None
    out = Snapshot([])
    for n, d in enumerate(dicts, start=1):
        ident = str(d.get("id")) if isinstance(d, dict) and d.get("id") is not None else f"#{n}"
        props = d.get("properties") if isinstance(d, dict) else None
        if isinstance(props, dict) and not any(
            props.get(k) for k in ("datetime", "start_datetime")
        ):
            out.invalid.append(
                {
                    "item_id": ident,
                    "check": "no_datetime",
                    "reason": "the item has no datetime (nor start_datetime)",
                }
            )
            continue
        try:
            # as written (no migration, which deep-copies each item): eo:bands (STAC 1.0) and
            # bands (1.1) are both read by the band mapping
            out.items.append(pystac.Item.from_dict(d, preserve_dict=False, migrate=False))
        except Exception as exc:  # noqa: BLE001 - pystac raises many kinds for a bad dict
            out.invalid.append(
                {
                    "item_id": ident,
                    "check": "invalid_item",
                    "reason": f"feature {n} is not a STAC item ({type(exc).__name__}: "
                    f"{str(exc)[:200]})",
                }
            )
    return out

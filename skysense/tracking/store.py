"""Connecting to the MLflow tracking store and model registry named by the configuration."""

from __future__ import annotations

import contextlib
import http.client
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from skysense.core.credentials import strip_credentials
from skysense.core.errors import RegistryError, RegistryUnavailable
from skysense.tracking.server import wait_for_health

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str | None, default: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``MLFLOW_TRACKING_URI``, else ``default`` (the
    configured ``registry.tracking_uri``), else a SQLite file ``mlflow.db``.

    A relative SQLite path (``sqlite:///mlflow.db``) is made absolute against the current folder,
    so that a subprocess started elsewhere reaches the same store.
    """
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI") or default or DEFAULT_TRACKING_URI
    if chosen.startswith("sqlite:///") and not chosen.startswith("sqlite:////"):
        rel = chosen[len("sqlite:///") :]
        chosen = "sqlite:///" + str(Path(rel).resolve())
    return chosen


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else ``None`` (server or other database)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def credentials_to_environment(uri: str) -> str:
    """``uri`` without its ``user:password@``: for an ``http(s)`` server they move to
    ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (how MLflow's client sends basic
    auth, inherited by subprocesses), so that MLflow never prints or records them with the URI
    (it prints run links built from the URI). Other URIs are returned unchanged.
    """
    if not uri.startswith(("http://", "https://")) or "@" not in uri.split("/", 3)[2]:
        return uri
    parts = urlsplit(uri)
    if parts.username is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = unquote(parts.username)
    if parts.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = unquote(parts.password)
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def connect(uri: str | None = None, default: str | None = None) -> MlflowClient:
    """Point MLflow (fluent API and client) at the tracking store and registry; return a client.

    A server URI's ``user:password@`` is taken out of the URI (see
    :func:`credentials_to_environment`).

    Raises:
        RegistryUnavailable: an ``http`` store that does not answer (the URI is named without
            its credentials).
    """
    import mlflow
    from mlflow import MlflowClient

    resolved = credentials_to_environment(resolve_tracking_uri(uri, default))
    if (path := sqlite_path(resolved)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    client = MlflowClient(tracking_uri=resolved, registry_uri=resolved)
    if resolved.startswith("http"):
        public = strip_credentials(resolved).rstrip("/")
        try:
            wait_for_health(public, timeout_s=10.0)  # /health needs no credentials
        except RegistryError as exc:
            last = getattr(exc, "last_answer", None) or str(exc)
            raise RegistryUnavailable(
                f"cannot reach the MLflow tracking server {public} (no healthy answer at /health "
                f"within 10 s; last: {strip_credentials(last)}); start it, or point --tracking-uri "
                "/ MLFLOW_TRACKING_URI at a running one"
            ) from None
    return client


def _first_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[0] if lines else "no message"
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextlib.contextmanager
def registry_failures(uri: str) -> Iterator[None]:
    """Report MLflow, HTTP and store failures inside the block as :class:`RegistryUnavailable`.

    The message is one line naming the tracking URI without credentials and the first line of
    the failure (an HTML error page or a server traceback is not repeated). Named
    :class:`RegistryError` s (no challenger, unknown version) pass through as they are.

    Args:
        uri: the tracking URI in use.

    Raises:
        RegistryUnavailable: the store or server failed or could not be reached.
    """
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except RegistryError:
        raise
    except (
        MlflowException,
        requests.RequestException,
        SQLAlchemyError,
        ConnectionError,
        TimeoutError,
        http.client.HTTPException,
    ) as exc:
        public = strip_credentials(uri)
        cause = _first_line(strip_credentials(str(exc)).split(". Response body:")[0])
        what = (
            "that the server is up"
            if uri.startswith("http")
            else "that it is a database MLflow can open"
        )
        raise RegistryUnavailable(
            f"MLflow tracking store {public} failed ({type(exc).__name__}: {cause}); check {what} "
            "and that --tracking-uri / MLFLOW_TRACKING_URI names it"
        ) from exc


def ensure_experiment(
    client: MlflowClient, name: str, artifact_location: Path | None, tracking_uri: str
) -> str:
    """The id of experiment ``name``, created when missing.

    For a local store the artifact folder comes from ``registry.artifact_location``; a server
    chooses its own (proxied) location.
    """
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if artifact_location is not None and not tracking_uri.startswith("http"):
        location = Path(artifact_location).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception as exc:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise RegistryError(f"cannot create MLflow experiment {name!r}: {exc}") from exc
        return exp.experiment_id

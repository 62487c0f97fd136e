"""strip_credentials: the one function every shown URI goes through (issue #21, item 13)."""

from __future__ import annotations

import pytest

from skysense.core.credentials import has_credentials, strip_credentials, strip_credentials_in


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "postgresql+psycopg2://mlflow:pw@db:5432/mlflow",
            "postgresql+psycopg2://***@db:5432/mlflow",
        ),
        ("https://user:tok%40en@host/x", "https://***@host/x"),
        ("postgresql://u:p@ss@host/db", "postgresql://***@host/db"),  # unescaped @ in the password
        (
            "s3://bucket/k?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1&ok=1",
            "s3://bucket/k?X-Amz-Signature=***&X-Amz-Credential=***&ok=1",
        ),
        ("host=db password=hunter2 dbname=mlflow", "host=db password=*** dbname=mlflow"),
        (
            "error at http://a:b@127.0.0.1:5000/api, retry",
            "error at http://***@127.0.0.1:5000/api, retry",
        ),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        (
            "http://127.0.0.1:5000 (user bob@corp.example)",
            "http://127.0.0.1:5000 (user bob@corp.example)",
        ),
        ("train.min_improvement=0.01", "train.min_improvement=0.01"),
    ],
)
def test_strip_credentials(text, shown):
    assert strip_credentials(text) == shown
    assert has_credentials(text) == (text != shown)


def test_links_drop_the_marker_and_containers_are_walked():
    assert (
        strip_credentials("http://u:p@host:5000/#/models", marker=False)
        == "http://host:5000/#/models"
    )
    assert strip_credentials_in({"a": ["http://u:p@h", ("x", 1)], "b": 2}) == {
        "a": ["http://***@h", ("x", 1)],
        "b": 2,
    }

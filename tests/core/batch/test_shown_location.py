"""An input as events and logs show it: URLs lose their credentials and query, paths stay."""

from __future__ import annotations

import pytest

from crucible.core.batch.models import shown_location


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        (
            "https://user:secret@data.example.com:8443/rows.csv?token=abc",
            "https://data.example.com:8443/rows.csv?…",
        ),
        ("http://[::1]:8080/rows.csv", "http://[::1]:8080/rows.csv"),
        ("/data/rows.csv", "/data/rows.csv"),
        # A path that begins with two slashes and holds a bracket is a path, not a URL's host.
        ("//share[1/rows.csv", "//share[1/rows.csv"),
    ],
)
def test_inputs_are_shown_without_secrets(location: str, shown: str) -> None:
    assert shown_location(location) == shown

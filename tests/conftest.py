import os

import pytest

# Tests never draw progress bars and never touch the user's cache.
os.environ.setdefault("STEERNB_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STEERNB_CACHE", str(tmp_path_factory.mktemp("cache")))

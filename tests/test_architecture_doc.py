"""docs/architecture.md stays true: every file it names exists, and so does every name its recipes use."""

from __future__ import annotations

import re

import pytest

from tests.support.tools import REPO_ROOT

DOC = REPO_ROOT / "docs" / "architecture.md"
# A backticked token that names a file or a folder: ``exporter/http/endpoints.py``, ``collector/``.
PATH_TOKEN = re.compile(r"`([\w.-]+(?:/[\w.-]+)*(?:\.(?:py|yaml|yml|json|md|html)|/))`")


def named_paths() -> list[str]:
    """Every path the doc names in backticks, in order."""
    return sorted(set(PATH_TOKEN.findall(DOC.read_text(encoding="utf-8"))))


def test_the_doc_names_files() -> None:
    # Guards the pattern itself: a doc whose paths the pattern missed would pass vacuously.
    assert "exporter/exposition/families.py" in named_paths()
    assert "exporter/http/endpoints.py" in named_paths()
    assert "exporter/collector/settings.py" in named_paths()


@pytest.mark.parametrize("path", named_paths())
def test_every_named_path_exists(path: str) -> None:
    # Paths inside the package may be written relative to ``exporter/`` (``collector/companies.py``).
    assert (REPO_ROOT / path).exists() or (REPO_ROOT / "exporter" / path).exists(), path


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("exporter/exposition/families.py", "class CompanyFamily"),
        ("exporter/exposition/families.py", "COMPANY_FAMILIES: Final"),
        ("exporter/http/endpoints.py", "def exporter_routes("),
        ("exporter/collector/settings.py", "def collector_settings("),
        ("exporter/collector/scheduler.py", "self._cycle_lock = threading.Lock()"),
        ("exporter/collector/companies.py", "self._lock = threading.Lock()"),
        ("exporter/config/schema_export.py", "--output"),
    ],
)
def test_the_recipes_name_real_code(path: str, name: str) -> None:
    assert name in (REPO_ROOT / path).read_text(encoding="utf-8")

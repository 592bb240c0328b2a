"""One version everywhere: package, CLI, metrics, image label, manifests and changelog agree."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version as installed_version
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from exporter.exposition.selfmetrics import Telemetry
from exporter.exposition.selfspecs import BUILD_INFO
from tests.support.tools import REPO_ROOT

SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-.]?(?:a|b|rc|dev)\d+)?$")


def test_version_is_a_plain_release_number() -> None:
    assert SEMVER.match(__version__), __version__


def test_version_flag_prints_the_package_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"codat-exporter {__version__}"


def test_installed_package_metadata_carries_the_same_version() -> None:
    # Fails after a version bump until the package is reinstalled (`make setup-python`): the
    # metadata pip built is what `pip show` and wheel names report.
    assert installed_version("codat-exporter") == __version__


def test_build_info_metric_reports_the_version() -> None:
    exposition = generate_latest(Telemetry().registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    samples = families[BUILD_INFO.name].samples
    assert [(s.labels["version"], s.value) for s in samples] == [(__version__, 1.0)]


def test_dockerfile_labels_the_image_with_the_checked_version_argument() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile
    # The build stage compares VERSION with the installed package and fails on a mismatch
    # (tests/test_container.py builds it and checks the label on the real image).
    assert 'if [ "${VERSION}" != "${built}" ]' in dockerfile


def test_kubernetes_manifests_deploy_this_version() -> None:
    for variant in ("single", "sharded"):
        path = REPO_ROOT / "deploy" / "kubernetes" / variant / "kustomization.yaml"
        images = yaml.safe_load(path.read_text(encoding="utf-8"))["images"]
        assert [i["newTag"] for i in images if i["name"] == "codat-exporter"] == [__version__], path


def test_compose_demo_builds_the_image_with_this_version() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert compose["services"]["exporter"]["build"]["args"]["VERSION"] == __version__


def test_changelog_top_release_is_this_version() -> None:
    changelog = Path(REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.MULTILINE)
    assert releases, "CHANGELOG.md has no release headings"
    top = next(r for r in releases if r.lower() != "unreleased")
    assert top == __version__

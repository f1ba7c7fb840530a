"""The package metadata builds without deprecation warnings (issue 16: `pip install` warned
that `project.license` as a TOML table is deprecated)."""

from __future__ import annotations

import tomllib
import warnings

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

from tests import REPO

PYPROJECT = REPO / "pyproject.toml"


def test_license_is_an_spdx_expression() -> None:
    """PEP 639: `license` is an SPDX expression string; the `{text = ...}` table is deprecated."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert project["license"] == "Apache-2.0"


def test_build_backend_understands_an_spdx_license() -> None:
    """setuptools reads a license string only from version 77 on; older ones reject it."""
    requires = tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]
    assert "setuptools>=77" in requires


def test_setuptools_reads_the_project_table_without_warnings() -> None:
    """What `pip install` prints comes from here: any deprecation warning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), PYPROJECT)
    assert dist.metadata.license_expression == "Apache-2.0"

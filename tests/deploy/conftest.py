"""Fixtures for the deployment artifacts: helm (installed by the tests themselves) and a renderer."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.deploy.tooling import REPO, helm_binary, helm_env

CHART = REPO / "helm" / "posecluster"


@pytest.fixture(scope="session")
def helm(tmp_path_factory):
    binary = helm_binary()
    env = helm_env(tmp_path_factory.mktemp("helm-home"))

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args], capture_output=True, text=True, env=env, check=check)

    return run


@pytest.fixture(scope="session")
def render(helm):
    """helm template with the given values files / --set pairs -> the rendered documents."""

    def run(*values: str, sets: tuple[str, ...] = ()) -> list[dict]:
        args = ["template", "lab", str(CHART), "--namespace", "pose"]
        for name in values:
            args += ["-f", str(CHART / "ci" / name)]
        for pair in sets:
            args += ["--set", pair]
        out = helm(*args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    return run

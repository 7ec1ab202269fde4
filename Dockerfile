# posecluster: Ray 2.60 + CUDA PyTorch, one image for the Ray head, GPU workers and `ray job submit`.
# Build:   docker build -t posecluster:0.1.0 .
# Web app: docker run -p 8888:8888 -e POSECLUSTER_SERVE_TOKEN=... posecluster:0.1.0 serve s3://lab/ --host 0.0.0.0 --port 8888
# Weights: docker build --build-arg IMAGENET_WEIGHTS="resnet50 resnet101" -t posecluster:0.1.0 .
#          (needs internet at build time; baked into $TORCH_HOME so training starts offline)
# Ray's own image: its Python, its Ray (the version pyproject pins; tests/deploy checks they agree),
# CUDA user-space libraries, and the non-root user `ray` (uid 1000) that KubeRay expects.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${RAY_IMAGE}

ARG IMAGENET_WEIGHTS=""
ENV TORCH_HOME=/home/ray/.cache/torch \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# No system packages: PyAV's wheels carry FFmpeg, and nothing here needs OpenCV's libGL.
# uid 1000, gid 100: the image's `ray` user, numeric so Kubernetes can verify runAsNonRoot.
USER 1000:100
WORKDIR /home/ray/posecluster

# Dependencies first, so code edits do not reinstall torch: install pyproject's dependencies (with the web
# app's `serve` extra) at the versions of the lock (constraints.txt, the one the tests ran with), then the
# package.
COPY --chown=1000:100 pyproject.toml README.md constraints.txt ./
RUN mkdir -p posecluster && touch posecluster/__init__.py \
    && pip install -c constraints.txt "./[serve,ensemble]" \
    && pip uninstall -y posecluster
COPY --chown=1000:100 posecluster ./posecluster
RUN pip install --no-deps . \
    && python -c "import posecluster.serve, uvicorn, ray, torch; import posecluster; print('posecluster', posecluster.__version__, 'ray', ray.__version__, 'torch', torch.__version__)"

# Optional: torchvision's ImageNet files for the named backbones, where torch.hub looks for them.
RUN for name in ${IMAGENET_WEIGHTS}; do posecluster download-weights "$name" || exit 1; done

WORKDIR /home/ray
# `posecluster serve` (the web app) listens here when started with --port 8888.
EXPOSE 8888
ENTRYPOINT ["posecluster"]
CMD ["--help"]

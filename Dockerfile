# The mlops-ray image: the official Ray image (same Ray as pyproject.toml pins) with this package installed.
# Used by cluster/launcher.yaml and the KubeRay manifests in cluster/kuberay/.
#
#   docker build -t ghcr.io/OWNER/mlops-ray:0.1.0 .                                   # CPU nodes
#   docker build -t ghcr.io/OWNER/mlops-ray:0.1.0-gpu \
#       --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
#
# The repository lives at /app, so a RayJob can run `python /app/jobs/train.py --config /app/examples/...`.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311
FROM ${RAY_IMAGE}

# CPU images take torch's CPU wheel (no CUDA libraries); GPU images the default CUDA wheel.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    MLOPS_RAY_WORKDIR=/data/work

# Dependencies first (cached while only the code changes), then the package itself.
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users mlops_ray ./mlops_ray
RUN pip install --no-cache-dir --extra-index-url ${TORCH_INDEX_URL} . \
    && python -c "import mlops_ray, ray; assert ray.__version__ == '2.60.0', ray.__version__"

COPY --chown=ray:users jobs ./jobs
COPY --chown=ray:users examples ./examples
COPY --chown=ray:users cluster ./cluster

USER ray
RUN mkdir -p /data/work
# `mlops-ray --help` answers without starting Ray: a cheap check that the console script is installed.
RUN mlops-ray --help > /dev/null

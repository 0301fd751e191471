"""Retrain, gate and roll out when the monitor's trigger fires, as a Ray job.

    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"MLOPS_RAY_WORKDIR": "/abs/work"}}' \
        -- python jobs/retrain.py --config examples/breast_cancer.yaml

Thin on purpose: argument parsing and the work live in mlops_ray.cluster.entrypoints.
"""

import sys

from mlops_ray.cluster.entrypoints import main

if __name__ == "__main__":
    sys.exit(main("retrain", sys.argv[1:]))

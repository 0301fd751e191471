"""Run the whole pipeline (data -> tune -> register [-> deploy]) as a Ray job.

    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"MLOPS_RAY_WORKDIR": "/abs/work"}}' \
        -- python jobs/train.py --config examples/breast_cancer.yaml

Thin on purpose: argument parsing and the work live in mlops_ray.cluster.entrypoints.
"""

import sys

from mlops_ray.cluster.entrypoints import main

if __name__ == "__main__":
    sys.exit(main("train", sys.argv[1:]))

"""Offline scoring of a Parquet folder with the registered model, as a Ray job.

    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"MLOPS_RAY_WORKDIR": "/abs/work"}}' \
        -- python jobs/batch_predict.py --config examples/breast_cancer.yaml \
        --input data/to_score --output /abs/work/scored

Thin on purpose: argument parsing and the work live in mlops_ray.cluster.entrypoints.
"""

import sys

from mlops_ray.cluster.entrypoints import main

if __name__ == "__main__":
    sys.exit(main("batch_predict", sys.argv[1:]))

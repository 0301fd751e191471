"""The pipeline refuses, with the reason, to run its data and tune steps on a head with no free CPU."""

from __future__ import annotations

import time

import pytest
import ray

from mlops_ray.exceptions import ServeError
from mlops_ray.serve.controller import require_free_cpu


@ray.remote
class _Holder:
    def ready(self) -> bool:
        return True


def test_a_head_without_a_free_cpu_is_refused_not_waited_on(ray_session: str) -> None:
    require_free_cpu()  # the session's Ray has room
    free = ray.available_resources().get("CPU", 0.0)
    holder = _Holder.options(num_cpus=free).remote()  # as Serve replicas would hold them
    try:
        ray.get(holder.ready.remote(), timeout=60)
        deadline = time.monotonic() + 10
        while ray.available_resources().get("CPU", 0.0) >= 1.0 and time.monotonic() < deadline:
            time.sleep(0.1)  # the resource view catches up
        with pytest.raises(ServeError, match=r"CPUs free .* need at least 1.*serve\.replica_cpus"):
            require_free_cpu()
    finally:
        ray.kill(holder)

"""A 3-node Ray cluster on one machine (head + 2 workers, token auth, dashboard), driven over stdin.

Run by tests/integration/test_cluster_multinode.py as its own process, so that the cluster's
token-auth setting and its nodes never touch the test session's Ray (nor other users' Rays: the
session files and the address file live under $RAY_TMPDIR, not /tmp/ray).

Prints one JSON line when up: {"gcs", "dashboard", "nodes": {"head", "w1", "w2"}}; then answers:
  kill_when_trial_on w2   wait until a Tune trial actor runs on w2, remove w2 (its processes die)
  trial_nodes             {node name: number of trial actors seen there} (alive or dead)
  quit                    shut the cluster down
"""

from __future__ import annotations

import json
import socket
import sys
import time

import ray
from ray.cluster_utils import Cluster

TRIAL_CLASS_HINTS = ("ImplicitFunc", "cv_trial")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _trial_actors() -> list[dict]:
    from ray.util.state import list_actors

    actors = list_actors(limit=10_000, raise_on_missing_output=False, detail=True)
    return [a.__dict__ if hasattr(a, "__dict__") else dict(a) for a in actors
            if any(h in (a.class_name or "") for h in TRIAL_CLASS_HINTS)]


def say(text: str) -> None:
    """One answer line, marked: Ray may print to stdout too."""
    # One write of the whole line: Ray's processes share this stdout, and print() writes the newline
    # separately, so a raylet's death message could land between the answer and its end of line.
    sys.stdout.write(f"HARNESS {text}\n")
    sys.stdout.flush()


def main() -> None:
    # The test sets RAY_TMPDIR: the session files and the "current cluster" address file live there, so
    # the job supervisor finds this cluster and other Rays on the machine never see it.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0,  # drivers only: every trial and data task runs on a worker node
        "include_dashboard": True, "dashboard_port": _free_port(), "dashboard_host": "127.0.0.1",
        # Not the default 52365: another Ray on this machine may hold it, and then the head has no job agent.
        "dashboard_agent_listen_port": _free_port(),
        "object_store_memory": 150 * 1024 * 1024,
    })
    workers = {name: cluster.add_node(num_cpus=2, object_store_memory=150 * 1024 * 1024,
                                      resources={f"node_{name}": 1}) for name in ("w1", "w2")}
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    names = {cluster.head_node.node_id: "head", **{n.node_id: k for k, n in workers.items()}}
    say(json.dumps({"gcs": cluster.address, "dashboard": f"http://{cluster.webui_url}",
                    "nodes": {v: k for k, v in names.items()}}))
    seen: dict[str, str] = {}  # actor id -> node name

    def record() -> list[dict]:
        acts = _trial_actors()
        for a in acts:
            if a.get("node_id") in names:
                seen[a["actor_id"]] = names[a["node_id"]]
        return acts

    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "kill_when_trial_on":
            target = cmd[1]
            deadline = time.monotonic() + float(cmd[2] if len(cmd) > 2 else 240)
            while time.monotonic() < deadline:
                acts = record()
                if any(a.get("state") == "ALIVE" and names.get(a.get("node_id")) == target for a in acts):
                    cluster.remove_node(workers.pop(target), allow_graceful=False)
                    say(json.dumps({"killed": target, "at": time.time()}))
                    break
                time.sleep(0.3)
            else:
                say(json.dumps({"killed": None}))
        elif cmd[0] == "trial_nodes":
            try:
                record()
            except Exception as e:  # the state API may miss a dead node's actors: keep what was seen
                print(f"state API: {e}", file=sys.stderr)
            counts: dict[str, int] = {}
            for node in seen.values():
                counts[node] = counts.get(node, 0) + 1
            say(json.dumps(counts))
        elif cmd[0] == "quit":
            break
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()

"""``python3 -m cairn_worker <entry.py> [--server URL] [--token T] [--concurrency N]``."""

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time

MIN_VERSION = (3, 10)


def watch_parent(pid):
    """With ``CAIRN_PARENT_PID`` (set by ``cairn dev``/``cairn start``): exit when that process is
    gone, so that a host killed with SIGKILL leaves no worker behind to serve old code."""
    if not pid or not pid.isdigit():
        return
    pid = int(pid)

    def check():
        while True:
            time.sleep(0.5)
            if os.getppid() != pid:
                os._exit(0)

    threading.Thread(target=check, name="cairn-parent", daemon=True).start()


def main(argv=None):
    if sys.version_info < MIN_VERSION:
        v = sys.version_info
        print(f"(python.too_old) found {v.major}.{v.minor}, need ≥ 3.10", file=sys.stderr)
        return 2
    from .worker import LogHandler, TaskLog, Worker, implicit_mode

    p = argparse.ArgumentParser(prog="python3 -m cairn_worker")
    p.add_argument("entry")
    p.add_argument("--server", default=os.environ.get("CAIRN_SERVER_URL", "http://127.0.0.1:8787"))
    p.add_argument("--token", default=os.environ.get("CAIRN_WORKER_TOKEN"))
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("CAIRN_WORKER_CONCURRENCY", "16")))
    p.add_argument(
        "--workflows",
        default=os.environ.get("CAIRN_WORKFLOWS", "[]"),
        help='JSON: [{"name", "class_name", "binding"}] (wrangler\'s workflows[])',
    )
    p.add_argument("--compatibility-date", default=os.environ.get("CAIRN_COMPATIBILITY_DATE"))
    p.add_argument("--compatibility-flags", default=os.environ.get("CAIRN_COMPATIBILITY_FLAGS", ""))
    a = p.parse_args(argv)
    try:
        workflows = json.loads(a.workflows)
        assert isinstance(workflows, list)
    except (ValueError, AssertionError):
        print("cairn_worker: --workflows must be a JSON array of {name, class_name, binding}", file=sys.stderr)
        return 2
    try:
        env_vars = json.loads(os.environ.get("CAIRN_VARS") or "{}")
        assert isinstance(env_vars, dict)
    except (ValueError, AssertionError):
        print("cairn_worker: CAIRN_VARS must be a JSON object of the env's vars", file=sys.stderr)
        return 2
    flags = [f for f in a.compatibility_flags.split(",") if f]
    sys.stdout = TaskLog(sys.stdout, "info")
    sys.stderr = TaskLog(sys.stderr, "error")
    logging.getLogger().addHandler(LogHandler())
    logging.getLogger().setLevel(logging.INFO)
    worker = Worker(
        a.entry, a.server, a.token, a.concurrency, workflows, implicit_mode(a.compatibility_date, flags), env_vars
    )
    try:
        worker.check_classes()
    except SystemExit as e:
        print(e, file=sys.__stderr__)
        return 3
    watch_parent(os.environ.get("CAIRN_PARENT_PID"))
    from .worker import ServerError

    try:
        asyncio.run(worker.main())
    except ServerError as e:
        if e.code not in ("protocol.unsupported", "workflow.not_found"):
            raise
        print(f"cairn_worker: the server refused this worker: {e}", file=sys.__stderr__)
        return 3
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)

"""The Python worker: speaks the worker protocol (version 2, SPEC §11.3, docs/python.md) with a Cairn server.

It is stateless: each task replays ``run()`` from the top with the stored outcomes it carries.
HTTP is ``http.client`` with keep-alive, one connection per thread; every blocking call runs in
``asyncio.to_thread``.
"""

import asyncio
import base64
import contextvars
import http.client
import importlib.util
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from .bindings import Env
from .step import Step, _Suspend

SDK = "cairn-py/1"
PROTOCOL = 2
IMPLICIT_SINCE = "2026-02-25"
# Commands that carry held commits (protocol 2): those after which the worker may run a callback,
# wait, or end the run. Heartbeats and logs do not.
CARRIES = {"step", "attempt", "commit", "sleep", "wait", "wake", "finish"}
# A held commit not taken by a command this soon is sent alone (op ``commit``).
FLUSH_AFTER_S = float(os.environ.get("CAIRN_COMMIT_FLUSH_MS", "5")) / 1000
# Values above this are reported at once: the server may refuse them (step.output_too_large).
HOLD_MAX_BYTES = 512 * 1024


class LeaseLost(Exception):
    pass


class ServerError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code


class Http:
    """JSON over HTTP/1.1 to the server; one keep-alive connection per thread."""

    def __init__(self, base_url, token=None):
        u = urllib.parse.urlsplit(base_url)
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.https = u.scheme == "https"
        self.prefix = u.path.rstrip("/") + "/api/v1"
        self.token = token
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            c = cls(self.host, self.port, timeout=120)
            self.local.conn = c
        return c

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body, allow_nan=False).encode("utf-8")
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        for attempt in range(6):
            conn = self._conn()
            try:
                conn.request(method, self.prefix + path, body=data, headers=headers)
                res = conn.getresponse()
                raw = res.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 5:
                    raise
                time.sleep(min(2.0, 0.1 * 2**attempt))
        parsed = json.loads(raw.decode("utf-8") or "null") if raw else None
        if res.status >= 400:
            err = (parsed or {}).get("errors", [{}])[0] if isinstance(parsed, dict) else {}
            raise ServerError(res.status, err.get("code"), err.get("message", f"HTTP {res.status}"))
        return parsed.get("result") if isinstance(parsed, dict) else parsed


_current = contextvars.ContextVar("cairn_task", default=None)


class TaskLog(io.TextIOBase):
    """``sys.stdout``/``stderr`` inside a task: lines go to the server's ``log``."""

    def __init__(self, real, level):
        self.real = real
        self.level = level

    def write(self, s):
        task = _current.get()
        if task is None:
            return self.real.write(s)
        task.buffer += s
        while "\n" in task.buffer:
            line, task.buffer = task.buffer.split("\n", 1)
            task.log(self.level, line)
        return len(s)

    def flush(self):
        self.real.flush()


class LogHandler(logging.Handler):
    def emit(self, record):
        task = _current.get()
        if task is None:
            return
        task.log(record.levelname.lower(), self.format(record))


class TaskRun:
    """One task: its commands (seq, epoch), heartbeats, and ``run()`` replayed."""

    def __init__(self, worker, task):
        self.worker = worker
        self.task = task
        self.id = task["task_id"]
        self.epoch = task["epoch"]
        self.seq = 0
        self.lock = threading.Lock()
        self.lost = False
        self.buffer = ""
        self.running = set()
        self.logs = []
        self.protocol = worker.protocol
        self.held = []
        self.flushing = None
        self.flush_timer = None

    def _next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def post(self, op, fields):
        body = {"seq": self._next_seq(), "epoch": self.epoch, "op": op, **fields}
        try:
            return self.worker.http.request(
                "POST", f"/workers/{self.worker.worker_id}/tasks/{self.id}", body
            )["reply"]
        except ServerError as e:
            if e.status in (404, 409):
                self.lost = True
                raise LeaseLost(str(e)) from None
            raise

    async def send(self, op, **fields):
        if self.lost:
            raise _Suspend()
        if self.held or self.flushing is not None:
            # Held commits go first: on this command, or (sent alone) before it is sent.
            me = asyncio.current_task()
            while self.flushing is not None and self.flushing is not me and not self.flushing.done():
                await asyncio.wait([self.flushing])
            if self.lost:
                raise _Suspend()
            if op in CARRIES and self.held:
                fields["commits"], self.held = self.held, []
        try:
            return await asyncio.to_thread(self.post, op, fields)
        except LeaseLost:
            raise _Suspend() from None

    def hold(self, report):
        """Protocol 2: a successful attempt the run goes on from; committed by the next command.

        Returns False when it must be reported now (protocol 1, or a large value)."""
        if self.protocol < 2 or len(json.dumps(report.get("value"), allow_nan=False)) > HOLD_MAX_BYTES:
            return False
        self.held.append({k: v for k, v in report.items() if k != "ok"})
        if self.flush_timer is None:
            self.flush_timer = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._flush_soon)
        return True

    def _flush_soon(self):
        self.flush_timer = None
        if self.held and not self.lost and (self.flushing is None or self.flushing.done()):
            self.flushing = asyncio.ensure_future(self._flush())

    async def _flush(self):
        try:
            await self.send("commit")
        except _Suspend:
            pass
        finally:
            if self.held and not self.lost:
                self.flush_timer = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._flush_soon)

    def log(self, level, message):
        if self.lost:
            return
        try:
            self.logs.append(asyncio.ensure_future(self.send("log", level=level, message=message)))
        except RuntimeError:  # printed from another thread: no loop here
            sys.__stdout__.write(message + "\n")

    async def heartbeats(self, main):
        interval = self.worker.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            if not self.running:
                continue
            try:
                reply = await asyncio.to_thread(self.post, "heartbeat", {"running": [
                    {"name": n, "count": c, "attempt": a} for (n, c, a) in list(self.running)
                ]})
            except (LeaseLost, OSError, ServerError):
                reply = {"cancel": "lease_lost"}
            if "cancel" in reply:
                self.lost = True
                main.cancel()
                return

    async def run(self):
        token = _current.set(self)
        try:
            if self.task["kind"] == "fetch":
                await self._fetch()
            else:
                await self._run()
        finally:
            _current.reset(token)

    async def _run(self):
        w = self.worker
        cls = getattr(w.module, self.task["class_name"], None)
        step = Step(self.send, self.task.get("steps") or [], w.implicit, self.running, self.hold)
        ev = dict(self.task["event"])
        from .step import to_datetime

        if isinstance(ev.get("timestamp"), (int, float)):
            ev["timestamp"] = to_datetime(ev["timestamp"])
        main = asyncio.ensure_future(self._call_run(cls, ev, step))
        beat = asyncio.ensure_future(self.heartbeats(main))
        try:
            await main
        except (asyncio.CancelledError, _Suspend):
            pass
        finally:
            beat.cancel()

    async def _call_run(self, cls, event, step):
        try:
            instance = cls(None, self.worker.env)
            output = await instance.run(event, step)
        except _Suspend:
            return
        except Exception as e:
            name = type(e).__name__
            if name == "WorkflowError" and hasattr(e, "name"):
                name, message = e.name, e.message
            else:
                message = str(e)
            await self._finish({"ok": False, "error": {"name": name, "message": message}})
            return
        try:
            json.dumps(output, allow_nan=False)
        except (TypeError, ValueError):
            await self._finish({
                "ok": False,
                "error": {"name": "WorkflowFatalError", "message": "The instance output is not JSON serialisable"},
            })
            return
        await self._finish({"ok": True, "output": output})

    async def _finish(self, fields):
        if self.logs:
            await asyncio.gather(*self.logs, return_exceptions=True)
        try:
            await self.send("finish", **fields)
        except _Suspend:
            pass

    async def _fetch(self):
        from workers import Request, Response

        r = self.task["request"]
        req = Request(r["method"], r["url"], dict(r["headers"]), base64.b64decode(r["body_b64"]))
        cls = getattr(self.worker.module, "Default", None)
        try:
            res = await cls(None, self.worker.env).fetch(req)
            if not isinstance(res, Response):
                res = Response(str(res))
        except Exception as e:
            res = Response(f"{type(e).__name__}: {e}\n", status=500)
        try:
            await self.send(
                "respond",
                status=res.status,
                headers=[[k, str(v)] for k, v in res.headers.items()],
                body_b64=base64.b64encode(res.body).decode("ascii"),
            )
        except _Suspend:
            pass


def implicit_mode(date, flags):
    flags = set(flags or [])
    if "no_python_workflows_implicit_dependencies" in flags:
        return False
    if "python_workflows_implicit_dependencies" in flags:
        return True
    return date is None or date >= IMPLICIT_SINCE


def load_module(path):
    path = os.path.abspath(path)
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("__cairn_entry__", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Worker:
    def __init__(self, entry, server, token, concurrency, workflows, implicit, vars=None):
        self.entry = entry
        self.http = Http(server, token)
        self.concurrency = concurrency
        self.workflows = workflows
        self.implicit = implicit
        self.module = load_module(entry)
        self.env = Env(self.http, workflows, vars)
        self.worker_id = None
        self.lease_ms = 30_000
        self.protocol = 1
        self.active = set()
        self.stopping = False
        self.polling = None

    def check_classes(self):
        for w in self.workflows:
            if not isinstance(getattr(self.module, w["class_name"], None), type):
                raise SystemExit(f"(workflow.not_found) class {w['class_name']} not found in {self.entry}")

    def register(self):
        body = {
            "language": "python",
            "sdk": SDK,
            "protocol": PROTOCOL,
            "workflows": [{"name": w["name"], "class_name": w["class_name"]} for w in self.workflows],
            "fetch": isinstance(getattr(self.module, "Default", None), type),
            "concurrency": self.concurrency,
        }
        r = self.http.request("POST", "/workers", body)
        self.worker_id = r["worker_id"]
        self.lease_ms = r["lease_ms"]
        # A server that does not say speaks protocol 1.
        self.protocol = min(PROTOCOL, int(r.get("protocol", 1)))

    def _poll(self, free):
        while not self.stopping:
            try:
                return self.http.request("POST", f"/workers/{self.worker_id}/poll", {"free": free})["tasks"]
            except ServerError as e:
                if e.code == "worker.not_found":
                    self.register()
                    continue
                raise
            except OSError:
                time.sleep(0.5)
                try:
                    self.register()
                except (OSError, ServerError):
                    pass
        return []

    async def main(self):
        loop = asyncio.get_running_loop()
        # Every blocking HTTP call runs in a thread: enough of them for each task's concurrent
        # commands, heartbeat and polls (the default pool has only cpu + 4).
        loop.set_default_executor(ThreadPoolExecutor(max_workers=self.concurrency * 4 + 8))
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._stop)
            except (NotImplementedError, RuntimeError):
                pass
        await asyncio.to_thread(self.register)
        while not self.stopping:
            free = self.concurrency - len(self.active)
            if free <= 0:
                await asyncio.wait(self.active, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                self.polling = asyncio.ensure_future(asyncio.to_thread(self._poll, free))
                tasks = await self.polling
            except asyncio.CancelledError:
                break
            except Exception as e:
                print(f"cairn_worker: poll failed: {e}", file=sys.__stderr__)
                await asyncio.sleep(1)
                continue
            for t in tasks:
                job = asyncio.ensure_future(TaskRun(self, t).run())
                self.active.add(job)
                job.add_done_callback(self.active.discard)
        if self.active:
            await asyncio.wait(self.active, timeout=10)
        try:
            await asyncio.to_thread(self.http.request, "DELETE", f"/workers/{self.worker_id}")
        except Exception:
            pass

    def _stop(self):
        self.stopping = True
        if self.polling is not None:
            self.polling.cancel()

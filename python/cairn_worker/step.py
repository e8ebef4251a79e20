"""The ``step`` object a Python workflow's ``run(event, step)`` receives (SPEC §10.2, §11.1).

It replays: outcomes stored by the engine are answered locally; each new step is one command to
the server, which makes every durable decision (retries, backoff, timers, suspension). Step counts
are assigned in call order per ``(kind, name)``, like the TypeScript engine's ``StepCounter``.
"""

import asyncio
import contextvars
import datetime as _dt
import inspect
import json
import re
import time

from workers.workflows import NonRetryableError, WorkflowError


class _Suspend(BaseException):
    """Unwinds ``run()`` when the instance suspends or the task is lost.

    A ``BaseException``, so that user code's ``except Exception:`` cannot swallow it.
    """


_UNITS = {
    "millisecond": 1,
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 604_800_000,
    "month": 2_592_000_000,
    "year": 31_536_000_000,
}


def duration_ms(value):
    """A duration as ms: a number (ms) or a string such as ``"10 seconds"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*", str(value))
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"Invalid duration {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def to_datetime(ms):
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)


class StepEvent(dict):
    """The event ``wait_for_event`` resolves to: a dict that also allows ``event.payload``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


def python_error(e):
    """An error from the engine as Python raises it (SPEC §11.1)."""
    name, message = e.get("name", "Error"), e.get("message", "")
    if name == "TypeError":
        return TypeError(message)
    if name in ("ValueError", "RangeError"):
        return ValueError(message)
    if name == "NonRetryableError":
        return NonRetryableError(message)
    return WorkflowError(name, message)


def wire_error(e):
    return {
        "name": getattr(e, "name", None) if isinstance(e, NonRetryableError) else type(e).__name__,
        "message": str(e),
        "non_retryable": isinstance(e, NonRetryableError),
    }


_chain = contextvars.ContextVar("cairn_dependency_chain", default=())


class DecoratedStep:
    """What ``@step.do(...)`` returns: awaiting ``f()`` resolves dependencies, then runs the step."""

    def __init__(self, step, name, func, depends, concurrent, config, legacy):
        self._step = step
        self.name = name
        self.__name__ = name
        self.func = func
        self.depends = depends
        self.concurrent = concurrent
        self.config = config
        self.legacy = legacy

    def __call__(self):
        return self._step._run_decorated(self)


class Step:
    def __init__(self, send, stored, implicit, running, hold=None):
        """``send(op, **fields)`` is an async command; ``stored`` the task's stored outcomes;
        ``hold(report)`` keeps a successful attempt to be committed by the next command (protocol
        2) and says whether it did."""
        self._send = send
        self._hold = hold
        self._stored = {(s["kind"], s["name"], s["count"]): s for s in stored}
        self._counts = {}
        self._implicit = implicit
        self._declared = {}
        self._memo = {}
        self._inflight = {}
        self._running = running

    # ---- identity -------------------------------------------------------------------------

    def _key(self, kind, name):
        if not isinstance(name, str) or name == "":
            raise TypeError("A step name must be a non-empty string")
        n = self._counts.get((kind, name), 0) + 1
        self._counts[(kind, name)] = n
        return n

    # ---- step.do ----------------------------------------------------------------------------

    def do(self, name=None, depends=None, concurrent=False, config=None, *rest, **kwargs):
        """``@step.do(...)``: implicit mode ``do(name=None, *, concurrent, config)``, legacy
        ``do(name, depends=None, concurrent=False, config=None)``."""
        if rest or kwargs:
            raise TypeError(f"step.do() got unexpected arguments {rest or ''}{list(kwargs) or ''}")
        if self._implicit and depends is not None and not callable(name):
            if not isinstance(depends, list):
                raise TypeError("step.do() takes keyword-only concurrent and config in this mode")
        if callable(name) and not isinstance(name, DecoratedStep):
            return self._decorate(None, name, None, False, None)

        def decorator(func):
            return self._decorate(name, func, depends, concurrent, config)

        return decorator

    def _decorate(self, name, func, depends, concurrent, config):
        if not callable(func):
            raise TypeError("step.do decorates a function")
        step_name = name if name is not None else func.__name__
        d = DecoratedStep(self, step_name, func, depends, concurrent, config, not self._implicit)
        self._declared[step_name] = d
        return d

    def _params(self, d):
        params = [p for p in inspect.signature(d.func).parameters if p != "ctx"]
        if d.legacy:
            if params and d.depends is None:
                raise TypeError(f"Step has {len(params)} non-ctx parameter(s) but no 'depends' list provided")
            deps = list(d.depends or [])
            if len(deps) != len(params):
                raise TypeError(
                    f"Step declares {len(params)} non-ctx parameter(s) but 'depends' has {len(deps)} item(s)"
                )
            return list(zip(params, deps))
        pairs = []
        for p in params:
            dep = self._declared.get(p)
            if dep is None:
                raise TypeError(f"Received unexpected parameter {p}")
            pairs.append((p, dep))
        return pairs

    async def _resolve(self, dep):
        chain = _chain.get()
        if dep.name in chain:
            raise TypeError("Dependency cycle: " + " -> ".join([*chain[chain.index(dep.name):], dep.name]))
        if dep.name in self._memo:
            return self._memo[dep.name]
        fut = self._inflight.get(dep.name)
        if fut is None:
            fut = asyncio.ensure_future(self._run_decorated(dep))
            self._inflight[dep.name] = fut
        return await asyncio.shield(fut)

    async def _run_decorated(self, d):
        token = _chain.set((*_chain.get(), d.name))
        try:
            pairs = self._params(d)
            if d.concurrent:
                values = await asyncio.gather(*[self._resolve(dep) for _, dep in pairs])
            else:
                values = [await self._resolve(dep) for _, dep in pairs]
        finally:
            _chain.reset(token)
        kwargs = {p: v for (p, _), v in zip(pairs, values)}
        wants_ctx = "ctx" in inspect.signature(d.func).parameters

        async def callback(ctx):
            args = dict(kwargs)
            if wants_ctx:
                args["ctx"] = ctx
            result = d.func(**args)
            if inspect.isawaitable(result):
                result = await result
            return result

        value = await self._do(d.name, d.config, callback)
        self._memo[d.name] = value
        return value

    async def _do(self, name, config, callback):
        count = self._key("do", name)
        stored = self._stored.get(("do", name, count))
        if stored is not None:
            if stored["outcome"] == "ok":
                return stored.get("value")
            raise python_error(stored.get("error") or {})
        reply = await self._send("step", name=name, count=count, config=config or {})
        attempt = 0
        run_config = config or {}
        while True:
            if "value" in reply:
                return reply["value"]
            if "error" in reply:
                raise python_error(reply["error"])
            if "suspend" in reply or "cancel" in reply:
                raise _Suspend()
            if "retry" in reply and "wait_ms" in reply["retry"]:
                # Protocol 2: the engine waits out the backoff in memory; wait here, then ask.
                await asyncio.sleep(max(0.0, reply["retry"]["wait_ms"]) / 1000)
                reply = await self._send("wake", name=name, count=count, kind="do")
                continue
            if "retry" in reply:
                attempt = reply["retry"]["attempt"]
                wait = reply["retry"].get("at", 0) / 1000 - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            else:
                attempt = reply["run"]["attempt"]
                run_config = reply["run"].get("config") or {}
            reply = await self._attempt(name, count, attempt, run_config, callback)

    async def _attempt(self, name, count, attempt, config, callback):
        ctx = {"step": {"name": name, "count": count}, "attempt": attempt, "config": config}
        timeout = config.get("timeout") if isinstance(config, dict) else None
        started = time.time()
        cpu0 = time.thread_time()
        entry = (name, count, attempt)
        self._running.add(entry)
        fields = {}
        try:
            coro = callback(ctx)
            value = await (asyncio.wait_for(coro, duration_ms(timeout) / 1000) if timeout else coro)
            try:
                json.dumps(value, allow_nan=False)
                fields = {"ok": True, "value": value}
            except (TypeError, ValueError):
                fields = {
                    "ok": False,
                    "error": {
                        "name": "WorkflowFatalError",
                        "message": f'step "{name}-{count}" returned a value which is not JSON serialisable',
                        "fatal": True,
                    },
                }
        except asyncio.TimeoutError:
            fields = {
                "ok": False,
                "error": {"name": "WorkflowTimeoutError", "message": f"Execution timed out after {timeout}"},
            }
        except _Suspend:
            raise
        except Exception as e:  # the step's failure: the engine decides what follows
            fields = {"ok": False, "error": wire_error(e)}
        finally:
            self._running.discard(entry)
        report = {
            "name": name,
            "count": count,
            "attempt": attempt,
            "cpu_ms": (time.thread_time() - cpu0) * 1000,
            "started_at": started * 1000,
            "ended_at": time.time() * 1000,
            **fields,
        }
        if fields.get("ok") and self._hold is not None and self._hold(report):
            # Committed by the next command, before any other callback runs or the run ends.
            return {"value": json.loads(json.dumps(fields["value"], allow_nan=False))}
        return await self._send("attempt", **report)

    # ---- sleeps and events -------------------------------------------------------------------

    async def sleep(self, name, duration):
        count = self._key("sleep", name)
        if ("sleep", name, count) in self._stored:
            return None
        reply = await self._send("sleep", name=name, count=count, duration=duration)
        return await self._sleep_reply(name, count, reply)

    async def sleep_until(self, name, timestamp):
        count = self._key("sleep", name)
        if ("sleep", name, count) in self._stored:
            return None
        if isinstance(timestamp, _dt.datetime):
            if timestamp.tzinfo is None:
                timestamp = timestamp.replace(tzinfo=_dt.timezone.utc)
            until = timestamp.timestamp() * 1000
        else:
            until = timestamp
        reply = await self._send("sleep", name=name, count=count, until=until)
        return await self._sleep_reply(name, count, reply)

    async def _sleep_reply(self, name, count, reply):
        # Protocol 2: a short sleep the engine keeps in memory; wait here, then ask for the outcome.
        while "wait_ms" in reply:
            await asyncio.sleep(max(0.0, reply["wait_ms"]) / 1000)
            reply = await self._send("wake", name=name, count=count, kind="sleep")
        return self._wait_reply(reply)

    async def wait_for_event(self, name, event_type, /, timeout="24 hours"):
        count = self._key("waitForEvent", name)
        stored = self._stored.get(("wait", name, count))
        if stored is not None:
            if stored["outcome"] == "ok":
                return self._event(stored["value"])
            raise python_error(stored.get("error") or {})
        reply = await self._send("wait", name=name, count=count, type=event_type, timeout=timeout)
        if "event" in reply:
            return self._event(reply["event"])
        return self._wait_reply(reply)

    @staticmethod
    def _event(e):
        e = dict(e or {})
        if isinstance(e.get("timestamp"), (int, float)):
            e["timestamp"] = to_datetime(e["timestamp"])
        return StepEvent(e)

    @staticmethod
    def _wait_reply(reply):
        if "done" in reply:
            return None
        if "error" in reply:
            raise python_error(reply["error"])
        raise _Suspend()

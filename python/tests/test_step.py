"""Unit tests of the step object and its DAG semantics (SPEC §10.2), with a scripted server."""

import asyncio
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cairn_worker.step import Step, StepEvent, _Suspend, duration_ms, python_error  # noqa: E402
from cairn_worker.worker import implicit_mode  # noqa: E402
from workers import Response, WorkflowEntrypoint  # noqa: E402
from workers.workflows import NonRetryableError, WorkflowError  # noqa: E402


class FakeServer:
    """Answers `step` with run, `attempt` with the value (or the error), `sleep` with suspend."""

    def __init__(self):
        self.commands = []

    async def send(self, op, **fields):
        self.commands.append((op, fields))
        await asyncio.sleep(0)
        if op == "step":
            return {"run": {"attempt": 1, "config": {}}}
        if op == "attempt":
            if fields["ok"]:
                return {"value": fields["value"]}
            return {"error": {"name": fields["error"]["name"], "message": fields["error"]["message"]}}
        if op == "sleep":
            return {"suspend": "sleep"}
        return {"ok": True}


def run(coro):
    return asyncio.run(coro)


class DagTest(unittest.TestCase):
    def make(self, implicit=True, stored=()):
        self.server = FakeServer()
        return Step(self.server.send, list(stored), implicit, set())

    def steps_run(self):
        return [f["name"] for op, f in self.server.commands if op == "step"]

    def test_diamond_runs_each_node_once(self):
        step = self.make()

        async def flow():
            @step.do()
            async def a():
                return 1

            @step.do()
            async def b():
                return 2

            @step.do(concurrent=True)
            async def c(a, b):
                return a + b

            @step.do()
            async def d(b, c):
                return b * c

            return await d()

        self.assertEqual(run(flow()), 6)
        self.assertEqual(sorted(self.steps_run()), ["a", "b", "c", "d"])

    def test_sequential_dependencies_run_in_parameter_order(self):
        step = self.make()

        async def flow():
            @step.do()
            async def second():
                return 2

            @step.do()
            async def first():
                return 1

            @step.do()
            async def after(second, first):
                return [second, first]

            return await after()

        self.assertEqual(run(flow()), [2, 1])
        self.assertEqual(self.steps_run(), ["second", "first", "after"])

    def test_unexpected_parameter_and_cycle(self):
        step = self.make()

        async def unexpected():
            @step.do()
            async def x(nope):
                return 1

            await x()

        with self.assertRaisesRegex(TypeError, "^Received unexpected parameter nope$"):
            run(unexpected())

        async def cycle():
            @step.do()
            async def p(q):
                return 1

            @step.do()
            async def q(p):
                return 1

            await p()

        with self.assertRaisesRegex(TypeError, r"^Dependency cycle: p -> q -> p$"):
            run(cycle())

    def test_legacy_count_mismatch(self):
        step = self.make(implicit=False)

        async def none_given():
            @step.do("m")
            async def m(x):
                return x

            await m()

        with self.assertRaisesRegex(TypeError, r"Step has 1 non-ctx parameter\(s\) but no 'depends' list provided"):
            run(none_given())

        async def mismatch():
            @step.do("a")
            async def a():
                return 1

            @step.do("m", depends=[a, a])
            async def m(ctx, x):
                return x

            await m()

        with self.assertRaisesRegex(TypeError, r"Step declares 1 non-ctx parameter\(s\) but 'depends' has 2 item\(s\)"):
            run(mismatch())

    def test_direct_double_await_counts_two(self):
        step = self.make()

        async def flow():
            @step.do()
            async def t():
                return "x"

            await t()
            await t()

        run(flow())
        counts = [f["count"] for op, f in self.server.commands if op == "step"]
        self.assertEqual(counts, [1, 2])

    def test_stored_outcomes_are_answered_locally(self):
        step = self.make(stored=[{"kind": "do", "name": "a", "count": 1, "outcome": "ok", "value": 41}])

        async def flow():
            @step.do()
            async def a():
                raise AssertionError("must not run")

            @step.do()
            async def b(a):
                return a + 1

            return await b()

        self.assertEqual(run(flow()), 42)
        self.assertEqual(self.steps_run(), ["b"])

    def test_suspension_is_not_swallowed_by_except_exception(self):
        step = self.make()

        async def flow():
            try:
                await step.sleep("nap", "10 minutes")
            except Exception:
                return "swallowed"

        with self.assertRaises(_Suspend):
            run(flow())
        self.assertFalse(issubclass(_Suspend, Exception))

    def test_non_json_result_is_fatal(self):
        step = self.make()

        async def flow():
            @step.do()
            async def odd():
                return {1, 2}

            await odd()

        with self.assertRaises(WorkflowError):
            run(flow())
        attempt = [f for op, f in self.server.commands if op == "attempt"][0]
        self.assertTrue(attempt["error"]["fatal"])
        self.assertIn('step "odd-1" returned a value which is not JSON serialisable', attempt["error"]["message"])


class SurfaceTest(unittest.TestCase):
    def test_error_mapping(self):
        self.assertIsInstance(python_error({"name": "TypeError", "message": "m"}), TypeError)
        self.assertIsInstance(python_error({"name": "RangeError", "message": "m"}), ValueError)
        self.assertIsInstance(python_error({"name": "NonRetryableError", "message": "m"}), NonRetryableError)
        e = python_error({"name": "WorkflowTimeoutError", "message": "late"})
        self.assertEqual((e.name, e.message), ("WorkflowTimeoutError", "late"))

    def test_durations_and_modes(self):
        self.assertEqual(duration_ms("10 seconds"), 10_000)
        self.assertEqual(duration_ms("1 minute"), 60_000)
        self.assertEqual(duration_ms(250), 250)
        with self.assertRaises(ValueError):
            duration_ms("soon")
        self.assertTrue(implicit_mode("2026-02-25", []))
        self.assertFalse(implicit_mode("2026-02-24", []))
        self.assertTrue(implicit_mode("2025-01-01", ["python_workflows_implicit_dependencies"]))
        self.assertFalse(implicit_mode("2026-05-01", ["no_python_workflows_implicit_dependencies"]))

    def test_modules(self):
        import workers

        self.assertFalse(hasattr(workers, "NonRetryableError"))
        self.assertEqual(Response("hi", status=201).body, b"hi")
        self.assertTrue(issubclass(WorkflowEntrypoint, object))
        with self.assertRaisesRegex(NotImplementedError, "not supported by Cairn"):
            workers.DurableObject()
        ev = StepEvent({"payload": 1})
        self.assertEqual(ev.payload, 1)


if __name__ == "__main__":
    unittest.main()

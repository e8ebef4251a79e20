"""Protocol 2 in the worker: successful attempts carried by the next command, flushed alone when
none follows soon, and short waits answered ``wait_ms`` then ``wake``."""

import asyncio
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cairn_worker.step import Step  # noqa: E402
from cairn_worker.worker import TaskRun  # noqa: E402


class FakeHttp:
    def __init__(self, protocol):
        self.bodies = []
        self.protocol = protocol

    def request(self, method, path, body=None):
        self.bodies.append(body)
        op = body["op"]
        if op == "step":
            reply = {"run": {"attempt": 1, "config": {}}}
        elif op == "attempt":
            reply = {"value": body.get("value")}
        elif op == "sleep":
            reply = {"wait_ms": 5}
        elif op == "wake":
            reply = {"done": True}
        else:
            reply = {"ok": True}
        return {"seq": body["seq"], "reply": reply}


class FakeWorker:
    def __init__(self, protocol):
        self.protocol = protocol
        self.http = FakeHttp(protocol)
        self.worker_id = "w"
        self.lease_ms = 30_000


def flow(step):
    @step.do()
    async def a():
        return {"n": 1}

    @step.do()
    async def b(a):
        return a["n"] + 1

    return b


class CommitTest(unittest.TestCase):
    def ops(self, worker):
        return [(b["op"], [c["name"] for c in b.get("commits", [])]) for b in worker.http.bodies]

    def test_protocol_2_carries_each_outcome_on_the_next_command(self):
        worker = FakeWorker(2)

        async def main():
            t = TaskRun(worker, {"task_id": "t", "epoch": 1, "kind": "run"})
            step = Step(t.send, [], True, t.running, t.hold)
            value = await flow(step)()
            await step.sleep("nap", 5)
            await t.send("finish", ok=True, output=value)
            return value

        self.assertEqual(asyncio.run(main()), 2)
        self.assertEqual(
            self.ops(worker),
            [("step", []), ("step", ["a"]), ("sleep", ["b"]), ("wake", []), ("finish", [])],
        )

    def test_an_outcome_no_command_takes_is_sent_alone(self):
        worker = FakeWorker(2)

        async def main():
            t = TaskRun(worker, {"task_id": "t", "epoch": 1, "kind": "run"})
            step = Step(t.send, [], True, t.running, t.hold)

            @step.do()
            async def only():
                return "x"

            await only()
            await asyncio.sleep(0.1)  # code outside steps, slower than the flush deadline
            await t.send("finish", ok=True, output=None)

        asyncio.run(main())
        self.assertEqual(self.ops(worker), [("step", []), ("commit", ["only"]), ("finish", [])])

    def test_protocol_1_reports_every_attempt(self):
        worker = FakeWorker(1)

        async def main():
            t = TaskRun(worker, {"task_id": "t", "epoch": 1, "kind": "run"})
            step = Step(t.send, [], True, t.running, t.hold)
            return await flow(step)()

        self.assertEqual(asyncio.run(main()), 2)
        self.assertEqual(
            [op for op, _ in self.ops(worker)], ["step", "attempt", "step", "attempt"]
        )


if __name__ == "__main__":
    unittest.main()

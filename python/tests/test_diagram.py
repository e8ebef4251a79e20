import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cairn_worker.diagram import analyze  # noqa: E402

DIAMOND = '''
from workers import WorkflowEntrypoint

class Diamond(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def a():
            return 1

        @step.do()
        async def b():
            return 2

        @step.do(concurrent=True, config={"retries": {"limit": 3}})
        async def c(a, b):
            return a + b

        @step.do("d")
        async def d(b, c):
            return b * c

        await d()
        await step.sleep("nap", "10 minutes")
        await step.wait_for_event("approval", "approved", timeout="1 day")
'''


class DiagramTest(unittest.TestCase):
    def test_diamond_with_parallel_group_and_depends(self):
        [g] = analyze(DIAMOND)
        self.assertEqual(g["workflow"]["class_name"], "Diamond")
        nodes = g["workflow"]["nodes"]
        # d resolves b, then c (whose b is already done, so only a runs), then itself: as at run time.
        self.assertEqual([n.get("name") for n in nodes], ["b", "a", "c", "d", "nap", "approval"])
        self.assertEqual((nodes[2]["depends"], nodes[3]["depends"]), (["a", "b"], ["b", "c"]))
        self.assertEqual(nodes[2]["config"]["retries"]["limit"], 3)
        self.assertEqual(nodes[4]["duration"], "10 minutes")
        self.assertEqual(nodes[5]["options"], {"event_type": "approved", "timeout": "1 day"})
        [g2] = analyze(DIAMOND.replace("await d()", "await c()\n        await d()"))
        first = g2["workflow"]["nodes"][0]
        self.assertEqual((first["type"], first["kind"]), ("parallel", "all"))
        self.assertEqual([n["name"] for n in first["nodes"]], ["a", "b"])
        self.assertEqual([n.get("name") for n in g2["workflow"]["nodes"][1:3]], ["c", "d"])
        ids = [n["id"] for n in nodes]
        self.assertEqual(len(set(ids)), len(ids))

    def test_legacy_depends(self):
        src = '''
class L(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("load data")
        async def load():
            return 1

        @step.do("sum", depends=[load])
        async def total(x):
            return x

        await total()
'''
        [g] = analyze(src)
        names = [(n["name"], n.get("depends")) for n in g["workflow"]["nodes"]]
        self.assertEqual(names, [("load data", []), ("sum", ["load data"])])


if __name__ == "__main__":
    unittest.main()

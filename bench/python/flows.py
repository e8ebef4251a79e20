"""The 3-step workflow of bench/python.ts."""

from workers import WorkflowEntrypoint


class ThreeSteps(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do()
        async def one():
            return 1

        @step.do()
        async def two(one):
            return one + 1

        @step.do()
        async def three(two):
            return two + 1

        return await three()

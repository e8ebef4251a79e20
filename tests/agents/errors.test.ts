import { Agent, callable, getAgentByName, routeAgentRequest } from "@cairn/agents";
import { AgentClient } from "@cairn/agents/client";
import { afterEach, describe, expect, it } from "vitest";
import { TestCallableAgent } from "./agents.ts";
import { closeAll, serve } from "./helpers.ts";

// SPEC §13.9: errors keep upstream's texts and carry Cairn's codes as `error.code`.

class CodesAgent extends Agent<unknown, { n: number }> {
  override initialState = { n: 0 };
  override shouldConnectionBeReadonly(): boolean {
    return true;
  }
  override validateStateChange(next: { n: number }): void {
    if (next.n < 0) throw new Error("n must not be negative");
  }
  tick(): void {}
  /** Writes state from a (readonly) connection's call: what the write threw. */
  @callable() tryWrite(): [string, unknown] | null {
    try {
      this.setState({ n: 1 });
      return null;
    } catch (e) {
      return [(e as Error).message, (e as { code?: unknown }).code];
    }
  }
}

const clients: AgentClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await closeAll();
});

async function refusal(p: Promise<unknown>): Promise<{ message: string; code: unknown }> {
  try {
    await p;
  } catch (e) {
    return { message: (e as Error).message, code: (e as { code?: unknown }).code };
  }
  throw new Error("expected a refusal");
}

describe("error codes", () => {
  it("agent.invalid_name and agent.not_found", async () => {
    const s = await serve([{ binding: "CodesAgent", class: CodesAgent }]);
    expect(await refusal(getAgentByName(s.env.CodesAgent, ""))).toEqual({
      message: "getAgentByName: the name must be a non-empty string",
      code: "agent.invalid_name",
    });
    expect(await refusal(getAgentByName(s.env.CodesAgent, "x".repeat(257)))).toEqual({
      message: "getAgentByName: the name is 257 characters; at most 256 are allowed",
      code: "agent.invalid_name",
    });
    const r = await routeAgentRequest(new Request("http://h/agents/nobody/a"), s.env);
    expect([r!.status, await r!.text(), r!.headers.get("x-cairn-error")]).toEqual([
      400,
      "Invalid request",
      "agent.not_found",
    ]);
  });

  it("agent.state_rejected and agent.readonly, across the object's RPC too", async () => {
    const s = await serve([{ binding: "CodesAgent", class: CodesAgent }]);
    const stub = (await getAgentByName(s.env.CodesAgent, "a")) as any;
    expect(await refusal(stub.setState({ n: -1 }))).toEqual({
      message: "n must not be negative",
      code: "agent.state_rejected",
    });
    expect(await refusal(stub.setState({ big: "x".repeat(1024 * 1024) }))).toEqual({
      message: expect.stringMatching(
        /^setState: the state is \d+ bytes of JSON; at most 1048576 are allowed$/,
      ),
      code: "agent.state_rejected",
    });
    const c = new AgentClient({ agent: "CodesAgent", name: "a", host: new URL(s.url).host });
    clients.push(c);
    await c.ready;
    expect(await c.call("tryWrite")).toEqual(["Connection is readonly", "agent.readonly"]);
    expect(c.state).toEqual({ n: 0 });
  });

  it("schedule.invalid and workflow.not_tracked", async () => {
    const s = await serve([{ binding: "CodesAgent", class: CodesAgent }]);
    const stub = (await getAgentByName(s.env.CodesAgent, "a")) as any;
    expect(await refusal(stub.scheduleEvery(0, "tick"))).toEqual({
      message: "intervalSeconds must be a positive number",
      code: "schedule.invalid",
    });
    expect(await refusal(stub.schedule(10, "missing"))).toEqual({
      message: "this.missing is not a function",
      code: "schedule.invalid",
    });
    expect((await refusal(stub.schedule("not a cron", "tick"))).code).toBe("schedule.invalid");
    expect(await refusal(stub.schedule(10, "tick", undefined, { retry: { maxAttempts: 0 } }))).toEqual({
      message: "retry.maxAttempts must be >= 1",
      code: "schedule.invalid",
    });
    expect(await stub.listSchedules()).toEqual([]);
    expect(await refusal(stub.approveWorkflow("wf-1"))).toEqual({
      message: "Workflow wf-1 not found in tracking table",
      code: "workflow.not_tracked",
    });
  });

  it("agent.rpc_timeout on the client", async () => {
    const s = await serve([{ binding: "TestCallableAgent", class: TestCallableAgent }]);
    const c = new AgentClient({ agent: "TestCallableAgent", host: new URL(s.url).host });
    clients.push(c);
    await c.ready;
    expect(await refusal(c.call("sleep", [300], { timeout: 20 }))).toEqual({
      message: "RPC call to sleep timed out after 20ms",
      code: "agent.rpc_timeout",
    });
  });
});

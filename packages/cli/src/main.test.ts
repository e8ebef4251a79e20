import type { InstanceSummary } from "@cairn/api";
import { describe, expect, it } from "vitest";
import type { CliIo } from "./context.ts";
import { EXIT_ERROR, EXIT_OK, EXIT_USAGE, run } from "./main.ts";

// The CLI in-process against a fake API: which requests each command line makes, what it prints,
// and the exit code of every kind of usage error.

interface Sent {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  auth: string | null;
}

const summary = (id: string, status = "running"): InstanceSummary =>
  ({
    id,
    status,
    workflow: "checkout",
    created_on: "2026-01-01T00:00:00.000Z",
    modified_on: "2026-01-01T00:00:01.000Z",
    started_on: null,
    ended_on: null,
  }) as InstanceSummary;

function fakeApi(
  answer: (req: Sent) => { status?: number; result?: unknown; error?: [string, string]; info?: unknown },
) {
  const sent: Sent[] = [];
  const fetch = async (request: Request) => {
    const u = new URL(request.url);
    const text = await request.text();
    const req: Sent = {
      method: request.method,
      path: u.pathname.replace(/^\/api\/v1/, ""),
      query: Object.fromEntries(u.searchParams),
      body: text ? JSON.parse(text) : undefined,
      auth: request.headers.get("authorization"),
    };
    sent.push(req);
    const a = answer(req);
    const body = a.error
      ? { success: false, errors: [{ code: a.error[0], message: a.error[1] }], messages: [], result: null }
      : {
          success: true,
          errors: [],
          messages: [],
          result: a.result ?? null,
          ...(a.info ? { result_info: a.info } : {}),
        };
    return Response.json(body, { status: a.status ?? (a.error ? 400 : 200) });
  };
  return { sent, fetch };
}

async function cli(
  argv: string[],
  api = fakeApi(() => ({ result: null })),
  env: Record<string, string> = {},
) {
  let stdout = "";
  let stderr = "";
  const io: Partial<CliIo> = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env,
    cwd: "/",
    now: () => Date.parse("2026-01-01T00:01:00.000Z"),
    columns: 80,
    fetch: api.fetch,
    utc: true,
    untilStopped: async () => {},
  };
  const code = await run(argv, io);
  return { code, stdout, stderr, sent: api.sent };
}

describe("usage errors exit 2", () => {
  const cases: [string, string[], RegExp][] = [
    ["unknown command", ["frobnicate"], /unknown command 'frobnicate'/],
    ["unknown subcommand", ["workflows", "instances", "explode", "wf"], /unknown command 'explode'/],
    ["unknown flag", ["workflows", "list", "--bogus"], /unknown option '--bogus'/],
    ["unknown global flag", ["--colour", "workflows", "list"], /unknown option '--colour'/],
    ["missing workflow", ["workflows", "trigger"], /missing required argument 'workflow'/],
    ["missing instance id", ["workflows", "instances", "pause", "wf"], /missing required argument 'id'/],
    ["missing ids to delete", ["workflows", "instances", "delete", "wf"], /missing required argument 'ids'/],
    ["bad params JSON", ["workflows", "trigger", "wf", "{nope"], /params must be valid JSON/],
    [
      "bad payload JSON",
      ["workflows", "instances", "send-event", "wf", "i", "--type", "t", "--payload", "{"],
      /--payload must be valid JSON/,
    ],
    [
      "missing --type",
      ["workflows", "instances", "send-event", "wf", "i"],
      /required option '--type <type>'/,
    ],
    ["option without value", ["workflows", "trigger", "wf", "--id"], /option '--id <id>' argument missing/],
    [
      "bad status",
      ["workflows", "instances", "list", "wf", "--status", "sleeping"],
      /Allowed choices are queued/,
    ],
    [
      "bad per-page",
      ["workflows", "instances", "list", "wf", "--per-page", "0"],
      /--per-page must be a positive integer/,
    ],
    [
      "count without name",
      ["workflows", "instances", "restart", "wf", "i", "--from-step-count", "2"],
      /--from-step-count needs --from-step-name/,
    ],
    [
      "type without name",
      ["workflows", "instances", "restart", "wf", "i", "--from-step-type", "do"],
      /--from-step-type needs --from-step-name/,
    ],
    [
      "bad step type",
      ["workflows", "instances", "restart", "wf", "i", "--from-step-name", "a", "--from-step-type", "step"],
      /Allowed choices are do, sleep, waitForEvent/,
    ],
    [
      "bad step count",
      ["workflows", "instances", "restart", "wf", "i", "--from-step-name", "a", "--from-step-count", "-1"],
      /--from-step-count/,
    ],
    ["too many arguments", ["workflows", "describe", "wf", "extra"], /too many arguments/],
    ["bad port", ["start", "--port", "99999"], /--port must be a port number/],
    [
      "bad truncate limit",
      ["workflows", "instances", "describe", "wf", "i", "--truncate-output-limit", "x"],
      /--truncate-output-limit/,
    ],
    [
      "bad --step-output",
      ["workflows", "instances", "describe", "wf", "i", "--step-output=maybe"],
      /--step-output must be true or false/,
    ],
    ["a group without its command", ["workflows"], /Usage: cairn workflows/],
    ["a bad --url", ["--url", "not a url", "workflows", "list"], /--url: Not a URL/],
  ];
  for (const [what, argv, message] of cases) {
    it(what, async () => {
      const r = await cli(argv);
      expect(r.code).toBe(EXIT_USAGE);
      expect(r.stderr).toMatch(message);
      expect(r.sent).toEqual([]);
    });
  }

  it("too many ids to delete", async () => {
    const ids = Array.from({ length: 101 }, (_, i) => `i${i}`);
    const r = await cli(["workflows", "instances", "delete", "wf", ...ids]);
    expect(r.code).toBe(EXIT_USAGE);
    expect(r.stderr).toMatch(/at most 100 instances per call, got 101/);
  });

  it("usage errors are JSON with --json", async () => {
    const r = await cli(["--json", "workflows", "trigger", "wf", "{"]);
    expect(r.code).toBe(EXIT_USAGE);
    expect(JSON.parse(r.stderr).error.code).toBe("usage");
  });
});

describe("help", () => {
  const commands = [
    [],
    ["dev"],
    ["start"],
    ["workflows"],
    ["workflows", "list"],
    ["workflows", "describe"],
    ["workflows", "trigger"],
    ["workflows", "instances"],
    ["workflows", "instances", "list"],
    ["workflows", "instances", "describe"],
    ["workflows", "instances", "pause"],
    ["workflows", "instances", "resume"],
    ["workflows", "instances", "terminate"],
    ["workflows", "instances", "restart"],
    ["workflows", "instances", "send-event"],
    ["workflows", "instances", "delete"],
    ["diagram"],
  ];
  for (const path of commands) {
    it(`cairn ${[...path, "--help"].join(" ")}`, async () => {
      const r = await cli([...path, "--help"]);
      expect(r.code).toBe(EXIT_OK);
      expect(r.stdout).toContain(`Usage: cairn${path.length ? ` ${path.join(" ")}` : ""}`);
      expect(r.stdout).toContain("--json");
      for (const line of r.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
    });
  }

  it("names the flags of restart and describe", async () => {
    const restart = (await cli(["workflows", "instances", "restart", "--help"])).stdout;
    for (const flag of ["--from-step-name", "--from-step-count", "--from-step-type"])
      expect(restart).toContain(flag);
    const describe = (await cli(["workflows", "instances", "describe", "--help"])).stdout;
    for (const flag of ["--step-output", "--truncate-output-limit"]) expect(describe).toContain(flag);
  });

  it("cairn --version prints the version", async () => {
    const r = await cli(["--version"]);
    expect(r.code).toBe(EXIT_OK);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it("cairn alone prints help and exits 0", async () => {
    const r = await cli([]);
    expect(r.code).toBe(EXIT_OK);
    expect(r.stdout).toContain("Usage: cairn");
  });
});

describe("commands and the requests they make", () => {
  it("trigger sends params and id, and prints wrangler's message", async () => {
    const api = fakeApi(() => ({ result: summary("order-42", "queued") }));
    const r = await cli(["workflows", "trigger", "checkout", '{"orderId":"42"}', "--id", "order-42"], api);
    expect(r.code).toBe(EXIT_OK);
    expect(r.sent).toEqual([
      {
        method: "POST",
        path: "/workflows/checkout/instances",
        query: {},
        body: { instance_id: "order-42", params: { orderId: "42" } },
        auth: null,
      },
    ]);
    expect(r.stdout).toBe('🚀 Workflow instance "order-42" has been queued successfully\n');
  });

  it("global options go before or after the command; the token comes from --token or CAIRN_TOKEN", async () => {
    const api = fakeApi(() => ({ result: [] }));
    await cli(["--url", "http://h:1", "--token", "a", "workflows", "list"], api);
    await cli(["workflows", "list", "--token", "b"], api, { CAIRN_URL: "http://h:1" });
    await cli(["workflows", "list"], api, { CAIRN_TOKEN: "c" });
    expect(api.sent.map((s) => s.auth)).toEqual(["Bearer a", "Bearer b", "Bearer c"]);
  });

  it("instances list maps --status, --reverse and --per-page and prints a table", async () => {
    const api = fakeApi(() => ({
      result: [summary("a"), summary("b", "complete")],
      info: { cursor: "next", per_page: 2, count: 2 },
    }));
    const r = await cli(
      ["workflows", "instances", "list", "checkout", "--status", "running", "--reverse", "--per-page", "2"],
      api,
    );
    expect(r.code).toBe(EXIT_OK);
    expect(r.sent[0]!.query).toEqual({ status: "running", direction: "asc", per_page: "2" });
    expect(r.stdout).toBe(
      [
        "Instance ID  Created              Modified             Status",
        "-----------  -------------------  -------------------  ------------",
        "a            2026-01-01 00:00:00  2026-01-01 00:00:01  ▶ Running",
        "b            2026-01-01 00:00:00  2026-01-01 00:00:01  ✅ Completed",
        "",
        "More instances: add --cursor next",
        "",
      ].join("\n"),
    );
    const json = await cli(["workflows", "instances", "list", "checkout", "--json"], api);
    expect(JSON.parse(json.stdout)).toEqual({
      instances: [summary("a"), summary("b", "complete")],
      cursor: "next",
    });
    expect(api.sent[1]!.query).toEqual({ direction: "desc", per_page: "50" });
  });

  it("workflows describe prints the schedules and when each fires next", async () => {
    const workflow = {
      id: "report",
      name: "report",
      class_name: "Report",
      instances: { queued: 0, running: 0, complete: 2 },
      triggered_on: "2026-01-01T00:00:00.000Z",
      schedules: [{ cron: "0 * * * *", next_at: "2026-01-01T01:00:00.000Z" }],
    };
    const out = await cli(
      ["workflows", "describe", "report"],
      fakeApi(() => ({ result: workflow })),
    );
    expect(out.code).toBe(EXIT_OK);
    expect(out.sent.map((r) => r.path)).toEqual(["/workflows/report"]);
    expect(out.stdout).toContain("Schedules:");
    expect(out.stdout).toMatch(/0 \* \* \* \* +2026-01-01 01:00:00/);
    const none = await cli(
      ["workflows", "describe", "report"],
      fakeApi(() => ({ result: { ...workflow, schedules: [] } })),
    );
    expect(none.stdout).not.toContain("Schedules:");
  });

  it("latest resolves to the newest instance", async () => {
    const api = fakeApi((req) =>
      req.path.endsWith("/instances")
        ? { result: [summary("newest")] }
        : { result: { status: "paused", timestamp: "t" } },
    );
    const r = await cli(["workflows", "instances", "pause", "checkout", "latest"], api);
    expect(r.code).toBe(EXIT_OK);
    expect(r.sent.map((s) => `${s.method} ${s.path}`)).toEqual([
      "GET /workflows/checkout/instances",
      "PATCH /workflows/checkout/instances/newest/status",
    ]);
    expect(r.sent[0]!.query).toEqual({ per_page: "1", direction: "desc" });
    expect(r.stdout).toBe('⏸️ The instance "newest" from checkout was paused successfully\n');
  });

  it("latest of a workflow without instances is an error", async () => {
    const r = await cli(
      ["workflows", "instances", "describe", "checkout"],
      fakeApi(() => ({ result: [] })),
    );
    expect(r.code).toBe(EXIT_ERROR);
    expect(r.stderr).toContain('Workflow "checkout" has no instances');
  });

  it("status changes send the contract's bodies", async () => {
    const api = fakeApi(() => ({ result: { status: "queued", timestamp: "t" } }));
    const outputs: string[] = [];
    for (const argv of [
      ["resume", "checkout", "a"],
      ["terminate", "checkout", "a"],
      ["restart", "checkout", "a"],
      [
        "restart",
        "checkout",
        "a",
        "--from-step-name",
        "charge",
        "--from-step-count",
        "2",
        "--from-step-type",
        "do",
      ],
    ])
      outputs.push((await cli(["workflows", "instances", ...argv], api)).stdout);
    expect(api.sent.map((s) => s.body)).toEqual([
      { status: "resume" },
      { status: "terminate" },
      { status: "restart" },
      { status: "restart", from: { name: "charge", count: 2, type: "do" } },
    ]);
    expect(outputs).toEqual([
      '🔄 The instance "a" from checkout was resumed successfully\n',
      '🥷 The instance "a" from checkout was terminated successfully\n',
      '🥷 The instance "a" from checkout was restarted successfully\n',
      '🥷 The instance "a" from checkout was restarted successfully\n',
    ]);
  });

  it("send-event posts the payload (default {}) to the event type", async () => {
    const api = fakeApi(() => ({ result: null }));
    const r = await cli(
      [
        "workflows",
        "instances",
        "send-event",
        "checkout",
        "a",
        "--type",
        "approved",
        "--payload",
        '{"by":"ana"}',
      ],
      api,
    );
    await cli(["workflows", "instances", "send-event", "checkout", "a", "--type", "ping"], api);
    expect(api.sent.map((s) => [s.path, s.body])).toEqual([
      ["/workflows/checkout/instances/a/events/approved", { by: "ana" }],
      ["/workflows/checkout/instances/a/events/ping", {}],
    ]);
    expect(r.stdout).toBe(
      '📤 The event with type "approved" and payload "{"by":"ana"}" was sent to the instance "a" from checkout\n',
    );
  });

  it("delete reports what was deleted and exits 1 when some ids failed", async () => {
    const api = fakeApi(() => ({
      result: {
        deleted: [{ id: "a" }],
        errors: [{ id: "zz", code: 404, message: "(instance.not_found) Instance zz not found" }],
      },
    }));
    const r = await cli(["workflows", "instances", "delete", "checkout", "a", "zz"], api);
    expect(api.sent[0]!.body).toEqual({ instances: ["a", "zz"] });
    expect(r.code).toBe(EXIT_ERROR);
    expect(r.stdout).toBe("🗑️ Deleted 1 instance from checkout: a\n");
    expect(r.stderr).toContain("✘ zz: (instance.not_found) Instance zz not found");
  });

  it("API errors print their message to stderr and exit 1", async () => {
    const api = fakeApi(() => ({
      status: 404,
      error: ["workflow.not_found", "(workflow.not_found) Workflow nope not found"],
    }));
    const r = await cli(["workflows", "describe", "nope"], api);
    expect(r.code).toBe(EXIT_ERROR);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("✘ (workflow.not_found) Workflow nope not found\n");
    const json = await cli(["workflows", "describe", "nope", "--json"], api);
    expect(JSON.parse(json.stderr)).toEqual({
      error: {
        code: "workflow.not_found",
        status: 404,
        message: "(workflow.not_found) Workflow nope not found",
      },
    });
  });

  it("an unreachable server names the URL", async () => {
    const down = {
      sent: [],
      fetch: async () =>
        Promise.reject(
          new TypeError("fetch failed", {
            cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" }),
          }),
        ),
    };
    const r = await cli(["--url", "http://127.0.0.1:9", "workflows", "list"], down as any);
    expect(r.code).toBe(EXIT_ERROR);
    expect(r.stderr).toContain("http://127.0.0.1:9/api/v1/workflows");
    expect(r.stderr).toContain("ECONNREFUSED");
  });

  it("--json prints the result of every API command", async () => {
    const api = fakeApi((req) => {
      if (req.method === "POST" && req.path.endsWith("/instances")) return { result: summary("x", "queued") };
      if (req.method === "PATCH") return { result: { status: "paused", timestamp: "t" } };
      return { result: null };
    });
    const trigger = await cli(["--json", "workflows", "trigger", "checkout"], api);
    expect(JSON.parse(trigger.stdout)).toEqual(summary("x", "queued"));
    const pause = await cli(["workflows", "instances", "pause", "checkout", "x", "--json"], api);
    expect(JSON.parse(pause.stdout)).toEqual({
      id: "x",
      workflow: "checkout",
      status: "paused",
      timestamp: "t",
    });
  });
});

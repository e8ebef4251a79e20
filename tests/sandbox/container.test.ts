// `ctx.container.exec` (SPEC §14.1, the 1.0 direction) on a real jail: argv with no shell, in `/`,
// stdin streamed (a ReadableStream, or "pipe"), output as bytes, and a pty with resize.
import { containerFor, stopAllJails } from "@cairn/sandbox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSandboxes } from "./helpers.ts";

let t: ReturnType<typeof openSandboxes>;
beforeAll(() => {
  t = openSandboxes();
});
afterAll(async () => {
  await stopAllJails();
  await t.host.close();
});

const text = (b: ArrayBuffer) => new TextDecoder().decode(b);
const container = () => containerFor({ id: { toString: () => "c0ffee", name: "ctr-io" } });

async function readAll(s: ReadableStream<Uint8Array> | null, until?: (text: string) => boolean) {
  let out = "";
  if (!s) return out;
  const reader = s.getReader();
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += dec.decode(value, { stream: true });
    if (until?.(out)) break;
  }
  reader.releaseLock();
  return out;
}

describe("ctx.container.exec", () => {
  it("runs argv in / with no shell; output is bytes; the exit code comes back", async () => {
    const c = container();
    const p = await c.exec(["sh", "-c", 'printf "\\377\\000ok"; echo err >&2; pwd >&2; exit 7']);
    expect(p.isPty).toBe(false);
    expect(p.stdin).toBeNull();
    const out = await p.output();
    expect([...new Uint8Array(out.stdout)]).toEqual([255, 0, 111, 107]);
    expect(text(out.stderr)).toBe("err\n/\n");
    expect(out.exitCode).toBe(7);
    expect(await p.exitCode).toBe(7);
    // No implicit shell: the argument is one word.
    expect(text((await (await c.exec(["echo", "$HOME; ls"])).output()).stdout)).toBe("$HOME; ls\n");
  });

  it("reads stdin from a ReadableStream", async () => {
    const c = container();
    const chunks = ["line one\n", "line two\n"].map((s) => new TextEncoder().encode(s));
    const stdin = new ReadableStream<Uint8Array>({
      pull(ctl) {
        const next = chunks.shift();
        if (next) ctl.enqueue(next);
        else ctl.close();
      },
    });
    const p = await c.exec(["wc", "-l"], { stdin });
    expect(text((await p.output()).stdout).trim()).toBe("2");
  });

  it('stdin "pipe" is a WritableStream: a conversation with the command, ended by closing it', async () => {
    const c = container();
    const p = await c.exec(["sh", "-c", 'while read l; do echo "got $l"; done; echo bye'], { stdin: "pipe" });
    const w = p.stdin?.getWriter();
    expect(w).toBeDefined();
    await w?.write(new TextEncoder().encode("a\n"));
    expect(await readAll(p.stdout, (s) => s.includes("got a\n"))).toBe("got a\n");
    await w?.write(new TextEncoder().encode("b\n"));
    await w?.close();
    expect(await readAll(p.stdout)).toBe("got b\nbye\n");
    expect(await p.exitCode).toBe(0);
  });

  it("a pty: the command sees a terminal of the given size; resize changes it; stderr is merged", async () => {
    const c = container();
    const p = await c.exec(
      ["sh", "-c", 'tty -s && echo tty; stty size; echo err >&2; read x; stty size; echo "x=$x"'],
      { pty: { cols: 100, rows: 30 }, stdin: "pipe" },
    );
    expect(p.isPty).toBe(true);
    expect(p.stderr).toBeNull();
    const first = await readAll(p.stdout, (s) => s.includes("err"));
    expect(first.replace(/\r/g, "")).toMatch(/^tty\n30 100\nerr/);
    await p.resize(120, 40);
    const w = p.stdin?.getWriter();
    await w?.write(new TextEncoder().encode("hi\n"));
    await w?.close();
    const rest = (await readAll(p.stdout)).replace(/\r/g, "");
    expect(rest).toContain("40 120\n");
    expect(rest).toContain("x=hi\n");
    expect(await p.exitCode).toBe(0);
  });

  it("kill stops the command; bad options are clear errors", async () => {
    const c = container();
    const p = await c.exec(["sleep", "1000"]);
    expect(p.pid).toBeGreaterThan(0);
    p.kill("SIGKILL");
    expect(await p.exitCode).toBe(137);
    await expect(c.exec(["true"], { stdin: "yes" as never })).rejects.toMatchObject({
      code: "sandbox.invalid_argument",
    });
    await expect(c.exec(["true"], { user: "root" })).rejects.toMatchObject({
      code: "sandbox.invalid_argument",
    });
    await expect(c.exec(["true"], { pty: { cols: 0 } })).rejects.toMatchObject({
      code: "sandbox.invalid_argument",
    });
    const plain = await c.exec(["true"]);
    await expect(plain.resize(80, 24)).rejects.toMatchObject({ code: "sandbox.invalid_argument" });
    await expect(c.exec(["/no/such/program"])).rejects.toMatchObject({
      code: "sandbox.exec_failed",
      message: expect.stringContaining("/no/such/program ENOENT"),
    });
  });
});

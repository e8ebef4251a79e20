// Cairn's sandbox supervisor: runs inside the jail (by the host's own `node`, bound read-only at
// /.cairn/node) and starts every command, session shell, process and file operation of its sandbox.
// It serves HTTP on the Unix socket /run/cairn/ctl.sock; every request must carry the sandbox's
// token (`authorization: Bearer <token>`), read from stdin at start so it is in no environment or
// command line. Replies are JSON, or NDJSON streams of events for commands and logs.
// Plain JavaScript with no imports outside Node: it runs as it is, inside the jail.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import * as fs from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { posix } from "node:path";
import { StringDecoder } from "node:string_decoder";

const SOCKET = process.env.CAIRN_SOCKET ?? "/run/cairn/ctl.sock";
const WORKSPACE = process.env.CAIRN_WORKSPACE ?? "/workspace";
const HOME = process.env.CAIRN_HOME ?? "/home/user";
const LOG_CAP = 1024 * 1024;
const BASE_ENV = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME,
  USER: "user",
  LOGNAME: "user",
  SHELL: "/bin/bash",
  LANG: "C.UTF-8",
  TERM: "xterm-256color",
  ...(process.env.CAIRN_PROXY
    ? {
        http_proxy: process.env.CAIRN_PROXY,
        https_proxy: process.env.CAIRN_PROXY,
        HTTP_PROXY: process.env.CAIRN_PROXY,
        HTTPS_PROXY: process.env.CAIRN_PROXY,
      }
    : {}),
};
const MEMORY_WATCH = Number(process.env.CAIRN_MEMORY_WATCH ?? 0);
const CPU_SECONDS = Number(process.env.CAIRN_CPU_SECONDS ?? 0);

class Failure extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function fsFailure(e, path) {
  const map = {
    ENOENT: "sandbox.file_not_found",
    ENOTDIR: "sandbox.file_not_found",
    EACCES: "sandbox.permission_denied",
    EPERM: "sandbox.permission_denied",
    EROFS: "sandbox.permission_denied",
    ENOSPC: "sandbox.disk_full",
    EDQUOT: "sandbox.disk_full",
    EEXIST: "sandbox.file_exists",
    EISDIR: "sandbox.is_directory",
    ENOTEMPTY: "sandbox.not_empty",
  };
  const code = map[e?.code] ?? "sandbox.file_error";
  return new Failure(code, `${e?.code ?? "error"}: ${path}: ${e?.message ?? e}`);
}

const inJail = (p) => posix.resolve(WORKSPACE, p);

// ---------------------------------------------------------------- process trees

/** Every process of the jail: pid → { ppid, pgid, sid }. */
async function processTable() {
  const table = new Map();
  for (const name of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await fs.readFile(`/proc/${name}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      table.set(Number(name), { ppid: Number(rest[1]), pgid: Number(rest[2]), sid: Number(rest[3]) });
    } catch {}
  }
  return table;
}

/** `pid` and every descendant, plus the members of its process group. */
async function treeOf(pid) {
  const table = await processTable();
  const out = new Set([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [p, info] of table) {
      if (!out.has(p) && (out.has(info.ppid) || info.pgid === pid)) {
        out.add(p);
        grew = true;
      }
    }
  }
  out.delete(process.pid);
  return [...out];
}

function signalAll(pids, signal) {
  for (const p of pids) {
    try {
      process.kill(p, signal);
    } catch {}
  }
}

/** Kills a whole tree: `signal` first, SIGKILL after `graceMs` for whatever is left. */
async function killTree(pid, signal = "SIGTERM", graceMs = 5000) {
  const pids = await treeOf(pid);
  signalAll(pids, signal);
  if (signal === "SIGKILL") return;
  setTimeout(
    async () =>
      signalAll(await treeOf(pid).then((l) => l.filter((p) => pids.includes(p) || true)), "SIGKILL"),
    graceMs,
  ).unref();
}

// ---------------------------------------------------------------- spawning

const SIGNALS = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGXCPU: 24,
};

function exitCodeOf(code, signal) {
  if (code !== null && code !== undefined) return code;
  return 128 + (SIGNALS[signal] ?? 1);
}

/** argv with the per-command CPU-time limit (RLIMIT_CPU) when one is set. */
function limited(argv, cpuSeconds) {
  const cpu = cpuSeconds || CPU_SECONDS;
  return cpu > 0 ? ["/usr/bin/prlimit", `--cpu=${cpu}`, "--", ...argv] : argv;
}

function spawnShell(command, { cwd, env, cpuSeconds }) {
  const argv = limited(["/bin/bash", "-c", command], cpuSeconds);
  return spawn(argv[0], argv.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
}

// ---------------------------------------------------------------- sessions

/** Finds `marker` in a stream: text before it is output, the rest of its line is returned. */
class MarkerScanner {
  constructor(marker, onText, onMarker) {
    this.marker = marker;
    this.onText = onText;
    this.onMarker = onMarker;
    this.buf = "";
    this.done = false;
  }
  /** The shell ended without the marker: whatever is buffered is output. */
  flush() {
    if (!this.done && this.buf) this.onText(this.buf);
    this.buf = "";
  }
  push(text) {
    if (this.done) return;
    this.buf += text;
    const at = this.buf.indexOf(this.marker);
    if (at >= 0) {
      const nl = this.buf.indexOf("\n", at);
      if (nl < 0) return;
      if (at > 0) this.onText(this.buf.slice(0, at));
      const rest = this.buf.slice(at + this.marker.length, nl).trim();
      this.done = true;
      this.buf = "";
      this.onMarker(rest);
      return;
    }
    const keep = this.marker.length;
    if (this.buf.length > keep) {
      this.onText(this.buf.slice(0, this.buf.length - keep));
      this.buf = this.buf.slice(this.buf.length - keep);
    }
  }
}

/** A persistent `bash`: cwd, exports and functions carry over between commands. */
class Session {
  constructor(id, { env = {}, cwd = WORKSPACE, commandTimeoutMs } = {}) {
    this.id = id;
    this.env = { ...BASE_ENV, ...clean(env) };
    this.cwd = cwd;
    this.commandTimeoutMs = commandTimeoutMs;
    this.queue = Promise.resolve();
    this.shell = undefined;
  }

  start() {
    const argv = limited(["/bin/bash", "--noprofile", "--norc"], 0);
    // A stored session comes back in its directory, unless that is gone (/tmp is not kept).
    if (!existsSync(this.cwd)) this.cwd = WORKSPACE;
    const shell = spawn(argv[0], argv.slice(1), {
      cwd: this.cwd,
      env: this.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    shell.stdout.setEncoding("utf8");
    shell.stderr.setEncoding("utf8");
    shell.stdin.on("error", () => {});
    shell.on("exit", () => {
      if (this.shell === shell) this.shell = undefined;
      this.onExit?.();
    });
    this.shell = shell;
    return shell;
  }

  /** Runs one command in the shell; `emit` gets stdout/stderr text; resolves with the exit code. */
  run(command, { timeout, emit, maxOutput, signal }) {
    const job = this.queue.then(() => this.#run(command, { timeout, emit, maxOutput, signal }));
    this.queue = job.catch(() => {});
    return job;
  }

  #run(command, { timeout, emit, maxOutput, signal }) {
    const shell = this.shell ?? this.start();
    const marker = `__CAIRN_${randomBytes(12).toString("hex")}__`;
    return new Promise((resolve, reject) => {
      let code;
      let outDone = false;
      let errDone = false;
      let written = 0;
      let settled = false;
      let stopped;
      const finish = (err) => {
        if (settled) return;
        err ??= stopped;
        settled = true;
        clearTimeout(timer);
        shell.stdout.off("data", onOut);
        shell.stderr.off("data", onErr);
        shell.off("close", onExit);
        signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(code);
      };
      const count = (text) => {
        written += Buffer.byteLength(text);
        if (maxOutput && written > maxOutput)
          stop(
            new Failure(
              "sandbox.output_limit",
              `the command wrote more than ${maxOutput} bytes of output; it was stopped`,
            ),
          );
      };
      const out = new MarkerScanner(
        marker,
        (t) => {
          count(t);
          emit("stdout", t);
        },
        (rest) => {
          const sp = rest.indexOf(" ");
          code = Number(sp < 0 ? rest : rest.slice(0, sp));
          if (sp >= 0) this.cwd = rest.slice(sp + 1);
          outDone = true;
          if (errDone) finish();
        },
      );
      const err = new MarkerScanner(
        marker,
        (t) => {
          count(t);
          emit("stderr", t);
        },
        () => {
          errDone = true;
          if (outDone) finish();
        },
      );
      const onOut = (t) => out.push(t);
      const onErr = (t) => err.push(t);
      const onExit = (c, s) => {
        // `exit` in the command ends the shell; the next command starts a new one.
        out.flush();
        err.flush();
        code = exitCodeOf(c, s);
        finish();
      };
      const stop = async (failure) => {
        if (settled || stopped) return;
        stopped = failure;
        const children = (await treeOf(shell.pid)).filter((p) => p !== shell.pid);
        signalAll(children, "SIGKILL");
        setTimeout(() => {
          if (settled) return;
          // The shell itself is stuck (a builtin loop): replace it; its state is lost.
          signalAll([shell.pid], "SIGKILL");
        }, 300).unref();
      };
      const onAbort = () => stop(new Failure("sandbox.aborted", "the command was aborted"));
      shell.stdout.on("data", onOut);
      shell.stderr.on("data", onErr);
      shell.on("close", onExit);
      signal?.addEventListener("abort", onAbort);
      const ms = timeout ?? this.commandTimeoutMs;
      const timer = ms
        ? setTimeout(() => stop(new Failure("sandbox.command_timeout", `Command timeout after ${ms}ms`)), ms)
        : undefined;
      const delim = `__CAIRN_EOF_${randomBytes(8).toString("hex")}`;
      shell.stdin.write(
        `IFS= read -r -d '' __cairn_cmd <<'${delim}'\n${command}\n${delim}\n` +
          `eval "$__cairn_cmd" </dev/null\n` +
          `__cairn_rc=$?; unset __cairn_cmd; printf '%s %d %s\\n' '${marker}' "$__cairn_rc" "$PWD"; printf '%s\\n' '${marker}' >&2\n`,
      );
    });
  }

  /** The shell's current directory and exported variables (for subshell commands). */
  async snapshot() {
    let text = "";
    await this.run(`printf '%s\\0' "$PWD"; env -0`, {
      emit: (s, t) => {
        if (s === "stdout") text += t;
      },
    });
    const [cwd, ...vars] = text.split("\0");
    const env = {};
    for (const v of vars) {
      const i = v.indexOf("=");
      if (i > 0) env[v.slice(0, i)] = v.slice(i + 1);
    }
    delete env._;
    delete env.SHLVL;
    return { cwd: cwd || this.cwd, env };
  }

  async setEnv(vars) {
    let script = "";
    for (const [k, v] of Object.entries(vars)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
        throw new Failure("sandbox.invalid_argument", `invalid environment variable name: ${k}`);
      if (v === undefined || v === null) {
        delete this.env[k];
        script += `unset ${k}\n`;
      } else {
        this.env[k] = String(v);
        script += `export ${k}=${shellQuote(String(v))}\n`;
      }
    }
    if (this.shell) await this.run(script || ":", { emit: () => {} });
  }

  destroy() {
    if (this.shell) signalAll([this.shell.pid], "SIGKILL");
    this.shell = undefined;
  }
}

function shellQuote(s) {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function clean(env) {
  const out = {};
  for (const [k, v] of Object.entries(env ?? {})) if (v !== undefined && v !== null) out[k] = String(v);
  return out;
}

const sessions = new Map();

function session(id, create = true) {
  let s = sessions.get(id);
  if (!s && create) {
    s = new Session(id);
    sessions.set(id, s);
  }
  if (!s) throw new Failure("sandbox.session_not_found", `no session ${id}`);
  return s;
}

// ---------------------------------------------------------------- background processes

/** A ring of text capped at LOG_CAP bytes: older output is dropped. */
class Log {
  constructor() {
    this.chunks = [];
    this.bytes = 0;
    this.dropped = 0;
  }
  push(text) {
    this.chunks.push(text);
    this.bytes += Buffer.byteLength(text);
    while (this.bytes > LOG_CAP && this.chunks.length > 1) {
      const c = this.chunks.shift();
      const n = Buffer.byteLength(c);
      this.bytes -= n;
      this.dropped += n;
    }
    if (this.bytes > LOG_CAP) {
      const buf = Buffer.from(this.chunks[0]);
      const cut = buf.subarray(buf.length - LOG_CAP).toString("utf8");
      this.dropped += this.bytes - LOG_CAP;
      this.chunks[0] = cut;
      this.bytes = Buffer.byteLength(cut);
    }
  }
  text() {
    return this.chunks.join("");
  }
}

const processes = new Map();

async function startProcess({ id, command, sessionId, cwd, env, cpuSeconds }) {
  if (processes.has(id) && processes.get(id).status === "running")
    throw new Failure("sandbox.process_exists", `a process with id ${id} is already running`);
  const base = sessionId ? await session(sessionId).snapshot() : { cwd: WORKSPACE, env: BASE_ENV };
  const child = spawnShell(command, {
    cwd: cwd ? inJail(cwd) : base.cwd,
    env: { ...base.env, ...clean(env) },
    cpuSeconds,
  });
  const rec = {
    id,
    pid: child.pid,
    command,
    sessionId,
    status: "running",
    startTime: new Date().toISOString(),
    endTime: undefined,
    exitCode: undefined,
    stdout: new Log(),
    stderr: new Log(),
    listeners: new Set(),
    child,
  };
  processes.set(id, rec);
  const emit = (event) => {
    for (const l of rec.listeners) l(event);
  };
  for (const stream of ["stdout", "stderr"]) {
    const dec = new StringDecoder("utf8");
    child[stream].on("data", (b) => {
      const t = dec.write(b);
      if (!t) return;
      rec[stream].push(t);
      emit({ type: stream, data: t, timestamp: new Date().toISOString(), processId: id });
    });
  }
  await new Promise((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (e) => reject(new Failure("sandbox.process_failed", e.message)));
  });
  child.on("close", (code, sig) => {
    rec.exitCode = exitCodeOf(code, sig);
    rec.endTime = new Date().toISOString();
    rec.status =
      rec.killed || rec.exitCode === 137 || rec.exitCode === 143
        ? "killed"
        : rec.exitCode === 0
          ? "completed"
          : "failed";
    emit({ type: "exit", exitCode: rec.exitCode, timestamp: rec.endTime, processId: id, data: rec.status });
    rec.listeners.clear();
  });
  return view(rec);
}

function view(rec) {
  return {
    id: rec.id,
    pid: rec.pid,
    command: rec.command,
    status: rec.status,
    startTime: rec.startTime,
    endTime: rec.endTime,
    exitCode: rec.exitCode,
    sessionId: rec.sessionId,
  };
}

function proc(id) {
  const rec = processes.get(id);
  if (!rec) throw new Failure("sandbox.process_not_found", `Process not found: ${id}`);
  return rec;
}

// ---------------------------------------------------------------- memory watchdog (no cgroups)

if (MEMORY_WATCH > 0 && process.env.CAIRN_JAILED) {
  const page = 4096;
  setInterval(async () => {
    // Only inside a jail, where every process in /proc is the sandbox's.
    const pids = [...(await processTable()).keys()];
    let total = 0;
    let biggest = 0;
    let biggestPid = 0;
    for (const pid of pids) {
      if (pid === process.pid || pid === 1) continue;
      try {
        const rss = Number((await fs.readFile(`/proc/${pid}/statm`, "utf8")).split(" ")[1]) * page;
        total += rss;
        if (rss > biggest) {
          biggest = rss;
          biggestPid = pid;
        }
      } catch {}
    }
    if (total > MEMORY_WATCH && biggestPid) signalAll([biggestPid], "SIGKILL");
  }, 100).unref();
}

// Without a jail (isolation "none") nothing ties the sandbox to Cairn's process: when the parent
// goes away (reparented), the supervisor kills what it started and exits.
if (process.env.CAIRN_UNJAILED) {
  const parent = process.ppid;
  setInterval(async () => {
    if (process.ppid === parent) return;
    signalAll(await treeOf(process.pid), "SIGKILL");
    process.exit(1);
  }, 500).unref();
}

// ---------------------------------------------------------------- files

function isText(buf) {
  if (buf.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}

const MIME = {
  ".txt": "text/plain",
  ".md": "text/markdown",
  ".json": "application/json",
  ".js": "text/javascript",
  ".ts": "text/typescript",
  ".html": "text/html",
  ".css": "text/css",
  ".py": "text/x-python",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".svg": "image/svg+xml",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".gz": "application/gzip",
  ".sh": "text/x-shellscript",
};

async function listFiles(root, { recursive, includeHidden }) {
  const base = inJail(root);
  const files = [];
  const walk = async (dir) => {
    let entries;
    try {
      entries = await fs.readdir(dir);
    } catch (e) {
      throw fsFailure(e, dir);
    }
    for (const name of entries.sort()) {
      if (!includeHidden && name.startsWith(".")) continue;
      const abs = posix.join(dir, name);
      let st;
      try {
        st = await fs.lstat(abs);
      } catch {
        continue;
      }
      const type = st.isFile()
        ? "file"
        : st.isDirectory()
          ? "directory"
          : st.isSymbolicLink()
            ? "symlink"
            : "other";
      const mode = st.mode & 0o777;
      files.push({
        name,
        absolutePath: abs,
        relativePath: posix.relative(base, abs),
        type,
        size: st.size,
        modifiedAt: st.mtime.toISOString(),
        mode: mode.toString(8),
        permissions: {
          readable: (mode & 0o400) !== 0,
          writable: (mode & 0o200) !== 0,
          executable: (mode & 0o100) !== 0,
        },
      });
      if (recursive && type === "directory") await walk(abs);
    }
  };
  await walk(base);
  return { files, count: files.length, path: base };
}

// ---------------------------------------------------------------- ports

function checkPort({ port, mode = "tcp", path = "/", status = { min: 200, max: 399 } }) {
  return new Promise((resolve) => {
    if (mode === "http") {
      const req = httpRequest({ host: "127.0.0.1", port, path, method: "GET", timeout: 2000 }, (res) => {
        res.resume();
        resolve({
          ready: res.statusCode >= status.min && res.statusCode <= status.max,
          status: res.statusCode,
        });
      });
      req.on("error", () => resolve({ ready: false }));
      req.on("timeout", () => req.destroy());
      req.end();
      return;
    }
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve({ ready: true });
    });
    s.once("error", () => resolve({ ready: false }));
  });
}

// ---------------------------------------------------------------- egress proxy (opt-in)

/** An HTTP proxy on the jail's loopback that tunnels through the host's allow-list (egress.sock). */
function startEgressProxy(url) {
  const { port } = new URL(url);
  const tunnel = (target, cb) => {
    const s = connect(process.env.CAIRN_EGRESS ?? "/run/cairn/egress.sock");
    s.once("connect", () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    let head = Buffer.alloc(0);
    const onData = (b) => {
      head = Buffer.concat([head, b]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      s.off("data", onData);
      const status = Number(head.toString("latin1").split(" ")[1]);
      const rest = head.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      cb(status === 200 ? null : status, s);
    };
    s.on("data", onData);
    s.once("error", () => cb(502, s));
  };
  const server = createServer((req, res) => {
    let target;
    try {
      target = new URL(req.url);
    } catch {
      res.writeHead(400).end("not a proxy request");
      return;
    }
    const hostPort = `${target.hostname}:${target.port || 80}`;
    tunnel(hostPort, (err, sock) => {
      if (err) {
        sock.destroy();
        res
          .writeHead(err === 403 ? 403 : 502)
          .end(err === 403 ? `egress to ${hostPort} is not allowed\n` : "bad gateway\n");
        return;
      }
      const up = httpRequest(
        {
          createConnection: () => sock,
          method: req.method,
          path: target.pathname + target.search,
          headers: req.headers,
        },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
  });
  server.on("connect", (req, client, head) => {
    tunnel(req.url, (err, sock) => {
      if (err) {
        client.end(`HTTP/1.1 ${err === 403 ? "403 Forbidden" : "502 Bad Gateway"}\r\n\r\n`);
        sock.destroy();
        return;
      }
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) sock.write(head);
      sock.pipe(client).pipe(sock);
      sock.on("error", () => client.destroy());
      client.on("error", () => sock.destroy());
    });
  });
  server.listen(Number(port), "127.0.0.1");
}

// ---------------------------------------------------------------- HTTP on the control socket

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : {};
}

function send(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function fail(res, e) {
  const code = e instanceof Failure ? e.code : "sandbox.error";
  if (res.headersSent) {
    res.end(`${JSON.stringify({ type: "error", error: { code, message: e.message } })}\n`);
    return;
  }
  send(res, e instanceof Failure ? 400 : 500, { error: { code, message: e.message } });
}

function ndjson(res) {
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  return (event) => res.write(`${JSON.stringify(event)}\n`);
}

// ---------------------------------------------------------------- exec with stdin (1.0 style)

/** Sets a pty's size (TIOCSWINSZ through stty; the foreground process gets SIGWINCH). */
async function resizePty(rec, cols, rows) {
  if (!rec.tty) {
    for (const pid of (await treeOf(rec.child.pid)).filter((p) => p !== rec.child.pid)) {
      try {
        const t = await fs.readlink(`/proc/${pid}/fd/0`);
        if (t.startsWith("/dev/pts/")) {
          rec.tty = t;
          break;
        }
      } catch {}
    }
  }
  if (!rec.tty) throw new Failure("sandbox.invalid_argument", "the process has no terminal yet");
  await new Promise((resolve, reject) => {
    const p = spawn("/usr/bin/stty", ["-F", rec.tty, "cols", String(cols), "rows", String(rows)], {
      stdio: "ignore",
    });
    p.once("error", (e) => reject(new Failure("sandbox.exec_failed", e.message)));
    p.once("close", (c) =>
      c === 0 ? resolve() : reject(new Failure("sandbox.exec_failed", `stty exited ${c}`)),
    );
  });
}

const ioProcesses = new Map();

/**
 * `POST /exec-io`: argv (no shell) with its stdin streamed from the request body, its output
 * streamed back as NDJSON events with base64 data (bytes, not text). The options are in the
 * `x-cairn-exec` header (base64url JSON: argv, cwd, env, pty, cols, rows). With `pty`, the command
 * runs on a terminal of its own (`script`), stdout and stderr merged as on a terminal.
 */
function execIo(req, res) {
  let o;
  try {
    o = JSON.parse(Buffer.from(String(req.headers["x-cairn-exec"] ?? ""), "base64url").toString("utf8"));
    if (!Array.isArray(o.argv) || o.argv.length === 0 || !o.argv.every((a) => typeof a === "string"))
      throw new Error("argv must be a non-empty array of strings");
  } catch (e) {
    req.resume();
    return fail(res, new Failure("sandbox.invalid_argument", `exec: ${e.message}`));
  }
  const env = { ...BASE_ENV, ...clean(o.env) };
  let argv = o.argv;
  if (o.pty) {
    const quoted = o.argv.map(shellQuote).join(" ");
    const size = o.cols && o.rows ? `stty cols ${Number(o.cols)} rows ${Number(o.rows)} 2>/dev/null; ` : "";
    argv = ["/usr/bin/script", "-qefc", `${size}exec ${quoted}`, "/dev/null"];
  }
  argv = limited(argv, o.cpuSeconds);
  const child = spawn(argv[0], argv.slice(1), {
    cwd: o.cwd ? inJail(o.cwd) : "/",
    env,
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  const write = ndjson(res);
  const rec = { child, tty: undefined };
  child.stdin.on("error", () => {});
  req.on("error", () => {});
  req.pipe(child.stdin);
  for (const stream of ["stdout", "stderr"])
    child[stream].on("data", (b) => write({ type: stream, b64: b.toString("base64") }));
  child.once("spawn", () => {
    ioProcesses.set(child.pid, rec);
    write({ type: "start", pid: child.pid });
  });
  child.once("error", (e) => {
    write({ type: "error", error: { code: "sandbox.exec_failed", message: e.message } });
    res.end();
  });
  res.on("close", () => {
    if (child.exitCode === null && child.signalCode === null) killTree(child.pid, "SIGKILL");
  });
  child.once("close", (c, sig) => {
    ioProcesses.delete(child.pid);
    killTree(child.pid, "SIGKILL");
    write({ type: "complete", exitCode: exitCodeOf(c, sig) });
    res.end();
  });
}

const routes = {
  "GET /ping": async () => "pong",
  "POST /exec": async (b, res, req) => {
    const write = ndjson(res);
    const started = Date.now();
    const ac = new AbortController();
    req.on("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    const emit = (type, data) => write({ type, data });
    try {
      let code;
      let cwd;
      if (b.sessionId && !b.subshell && !b.argv && !b.cwd && !b.env && !b.cpuSeconds) {
        write({ type: "start" });
        const s = session(b.sessionId);
        code = await s.run(b.command, {
          timeout: b.timeout,
          emit,
          maxOutput: b.maxOutput,
          signal: ac.signal,
        });
        cwd = s.cwd;
      } else {
        const base = b.sessionId ? await session(b.sessionId).snapshot() : { cwd: WORKSPACE, env: BASE_ENV };
        const cwd = b.cwd ? inJail(b.cwd) : base.cwd;
        const env = { ...base.env, ...clean(b.env) };
        const argv = b.argv ? ["/usr/bin/env", "--", b.command, ...b.argv] : null;
        const child = argv
          ? spawn(limited(argv, b.cpuSeconds)[0], limited(argv, b.cpuSeconds).slice(1), {
              cwd,
              env,
              stdio: ["ignore", "pipe", "pipe"],
              detached: true,
            })
          : spawnShell(b.command, { cwd, env, cpuSeconds: b.cpuSeconds });
        code = await new Promise((resolve, reject) => {
          let written = 0;
          let failure;
          const stop = (f) => {
            if (failure) return;
            failure = f;
            killTree(child.pid, "SIGKILL");
          };
          child.once("spawn", () => write({ type: "start", pid: child.pid }));
          child.once("error", (e) => reject(new Failure("sandbox.exec_failed", e.message)));
          for (const stream of ["stdout", "stderr"]) {
            const dec = new StringDecoder("utf8");
            child[stream].on("data", (buf) => {
              written += buf.length;
              if (b.maxOutput && written > b.maxOutput)
                stop(
                  new Failure(
                    "sandbox.output_limit",
                    `the command wrote more than ${b.maxOutput} bytes of output; it was stopped`,
                  ),
                );
              const t = dec.write(buf);
              if (t && !failure) emit(stream, t);
            });
          }
          const timer = b.timeout
            ? setTimeout(
                () => stop(new Failure("sandbox.command_timeout", `Command timeout after ${b.timeout}ms`)),
                b.timeout,
              )
            : undefined;
          ac.signal.addEventListener("abort", () =>
            stop(new Failure("sandbox.aborted", "the command was aborted")),
          );
          child.once("close", (c, s) => {
            clearTimeout(timer);
            // Whatever the command left behind in its process group goes with it.
            killTree(child.pid, "SIGKILL");
            if (failure) reject(failure);
            else resolve(exitCodeOf(c, s));
          });
        });
      }
      write({ type: "complete", exitCode: code, duration: Date.now() - started, ...(cwd ? { cwd } : {}) });
      res.end();
    } catch (e) {
      fail(res, e);
    }
  },
  "POST /session/create": async (b) => {
    if (sessions.has(b.id)) throw new Failure("sandbox.session_exists", `session ${b.id} already exists`);
    const s = new Session(b.id, {
      env: b.env,
      cwd: b.cwd ? inJail(b.cwd) : WORKSPACE,
      commandTimeoutMs: b.commandTimeoutMs,
    });
    sessions.set(b.id, s);
    return { id: b.id };
  },
  "POST /session/delete": async (b) => {
    const s = session(b.id, false);
    s.destroy();
    sessions.delete(b.id);
    return { success: true };
  },
  "POST /session/env": async (b) => {
    await session(b.sessionId).setEnv(b.vars ?? {});
    return { success: true };
  },
  "POST /file/write": async (b) => {
    const p = inJail(b.path);
    try {
      await fs.writeFile(p, Buffer.from(b.content, "base64"));
    } catch (e) {
      throw fsFailure(e, p);
    }
    return { success: true, path: p };
  },
  "POST /file/read": async (b) => {
    const p = inJail(b.path);
    let buf;
    try {
      buf = await fs.readFile(p);
    } catch (e) {
      throw fsFailure(e, p);
    }
    const binary = !isText(buf);
    const encoding = b.encoding === "base64" || (binary && b.encoding !== "utf-8") ? "base64" : "utf-8";
    return {
      success: true,
      path: p,
      content: encoding === "base64" ? buf.toString("base64") : buf.toString("utf8"),
      encoding,
      isBinary: binary,
      mimeType: MIME[posix.extname(p).toLowerCase()] ?? (binary ? "application/octet-stream" : "text/plain"),
      size: buf.length,
    };
  },
  "POST /file/mkdir": async (b) => {
    const p = inJail(b.path);
    try {
      await fs.mkdir(p, { recursive: !!b.recursive });
    } catch (e) {
      throw fsFailure(e, p);
    }
    return { success: true, path: p, recursive: !!b.recursive };
  },
  "POST /file/delete": async (b) => {
    const p = inJail(b.path);
    try {
      const st = await fs.lstat(p);
      if (st.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
      await fs.unlink(p);
    } catch (e) {
      throw fsFailure(e, p);
    }
    return { success: true, path: p };
  },
  "POST /file/rename": async (b) => {
    const from = inJail(b.from);
    const to = inJail(b.to);
    try {
      await fs.rename(from, to);
    } catch (e) {
      if (e.code === "EXDEV") {
        await fs.cp(from, to, { recursive: true });
        await fs.rm(from, { recursive: true });
      } else throw fsFailure(e, from);
    }
    return { success: true, path: from, newPath: to };
  },
  "POST /file/list": async (b) => ({ success: true, ...(await listFiles(b.path, b)) }),
  "POST /file/exists": async (b) => {
    try {
      await fs.lstat(inJail(b.path));
      return { success: true, exists: true };
    } catch {
      return { success: true, exists: false };
    }
  },
  "POST /process/start": async (b) => startProcess(b),
  "GET /process/list": async () => ({ processes: [...processes.values()].map(view) }),
  "POST /process/get": async (b) => view(proc(b.id)),
  "POST /process/kill": async (b) => {
    const rec = proc(b.id);
    if (rec.status === "running") {
      rec.killed = true;
      await killTree(rec.pid, b.signal ?? "SIGTERM", b.graceMs ?? 5000);
    }
    return { success: true, processId: b.id };
  },
  "POST /process/kill-all": async () => {
    let n = 0;
    for (const rec of processes.values())
      if (rec.status === "running") {
        rec.killed = true;
        n++;
        await killTree(rec.pid, "SIGKILL");
      }
    return { success: true, killed: n };
  },
  "POST /process/forget": async (b) => {
    const rec = proc(b.id);
    if (rec.status !== "running") processes.delete(b.id);
    return { success: true };
  },
  "POST /process/logs": async (b, res, req) => {
    const rec = proc(b.id);
    if (!b.follow)
      return {
        processId: b.id,
        stdout: rec.stdout.text(),
        stderr: rec.stderr.text(),
        dropped: rec.stdout.dropped + rec.stderr.dropped,
      };
    const write = ndjson(res);
    const now = new Date().toISOString();
    if (rec.stdout.bytes) write({ type: "stdout", data: rec.stdout.text(), timestamp: now, processId: b.id });
    if (rec.stderr.bytes) write({ type: "stderr", data: rec.stderr.text(), timestamp: now, processId: b.id });
    if (rec.status !== "running") {
      write({
        type: "exit",
        exitCode: rec.exitCode,
        timestamp: rec.endTime,
        processId: b.id,
        data: rec.status,
      });
      res.end();
      return undefined;
    }
    const listener = (event) => {
      write(event);
      if (event.type === "exit") res.end();
    };
    rec.listeners.add(listener);
    req.on("close", () => rec.listeners.delete(listener));
    return undefined;
  },
  "POST /port/check": async (b) => checkPort(b),
  "POST /exec-io/resize": async (b) => {
    const rec = ioProcesses.get(b.pid);
    if (!rec) throw new Failure("sandbox.process_not_found", `no running exec with pid ${b.pid}`);
    await resizePty(rec, b.cols, b.rows);
    return { success: true };
  },
  "POST /exec-io/kill": async (b) => {
    const rec = ioProcesses.get(b.pid);
    if (rec) await killTree(rec.child.pid, b.signal ?? "SIGTERM", 2000);
    return { success: true };
  },
};

const token = await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (d) => {
    text += d;
    const nl = text.indexOf("\n");
    if (nl >= 0) {
      process.stdin.pause();
      resolve(text.slice(0, nl));
    }
  });
});

const server = createServer(async (req, res) => {
  if (req.headers.authorization !== `Bearer ${token}`) {
    send(res, 401, {
      error: { code: "sandbox.unauthorized", message: "the control API needs the sandbox's token" },
    });
    req.resume();
    return;
  }
  const url = new URL(req.url, "http://sandbox");
  const proxied = /^\/proxy\/(\d+)(\/.*)?$/.exec(url.pathname);
  if (proxied) {
    const headers = { ...req.headers };
    delete headers.authorization;
    const up = httpRequest(
      {
        host: "127.0.0.1",
        port: Number(proxied[1]),
        method: req.method,
        path: (proxied[2] ?? "/") + url.search,
        headers,
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", (e) => {
      if (!res.headersSent)
        send(res, 502, {
          error: {
            code: "sandbox.port_unreachable",
            message: `nothing answers on port ${proxied[1]}: ${e.message}`,
          },
        });
      else res.destroy();
    });
    req.pipe(up);
    return;
  }
  if (req.method === "POST" && url.pathname === "/exec-io") {
    execIo(req, res);
    return;
  }
  const route = routes[`${req.method} ${url.pathname}`];
  if (!route) {
    send(res, 404, {
      error: { code: "sandbox.not_found", message: `no route ${req.method} ${url.pathname}` },
    });
    return;
  }
  try {
    const b = req.method === "POST" ? await body(req) : {};
    const result = await route(b, res, req);
    if (result !== undefined && !res.headersSent) send(res, 200, result);
  } catch (e) {
    fail(res, e);
  }
});
server.keepAliveTimeout = 60_000;
await fs.rm(SOCKET, { force: true });
server.listen(SOCKET, () => {
  if (process.env.CAIRN_PROXY) startEgressProxy(process.env.CAIRN_PROXY);
  process.stdout.write("ready\n");
});

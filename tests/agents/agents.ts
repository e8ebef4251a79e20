import {
  Agent,
  type Connection,
  type ConnectionContext,
  callable,
  getCurrentAgent,
  type StreamingResponse,
} from "@cairn/agents";

/** Agents under test, mirroring upstream's tests/agents/*.ts. */

export interface CounterState {
  count: number;
  items: string[];
}

export const events: { kind: string; [k: string]: unknown }[] = [];

export class TestStateAgent extends Agent<unknown, CounterState> {
  override initialState: CounterState = { count: 0, items: [] };

  override validateStateChange(next: CounterState, _source: Connection | "server"): void {
    if (typeof next?.count !== "number") throw new Error("count must be a number");
    if (next.count < 0) throw new Error("count must not be negative");
  }

  override onStateChanged(state: CounterState | undefined, source: Connection | "server"): void {
    events.push({
      kind: "changed",
      name: this.name,
      count: state?.count,
      source: source === "server" ? "server" : source.id,
    });
    if (state?.count === 13) throw new Error("unlucky");
  }

  override onError(connectionOrError: unknown, error?: unknown): void {
    events.push({ kind: "error", name: this.name, message: String((error ?? connectionOrError) as Error) });
  }

  @callable()
  increment(by = 1): number {
    this.setState({ ...this.state, count: this.state.count + by });
    return this.state.count;
  }

  @callable()
  getState(): CounterState {
    return this.state;
  }

  @callable()
  setRaw(state: unknown): void {
    this.setState(state as CounterState);
  }

  @callable()
  corrupt(): void {
    this.sql`UPDATE cf_agents_state SET state = ${"{not json"}`;
  }
}

export class NoInitialStateAgent extends Agent<unknown, { v: number } | undefined> {
  @callable()
  read(): unknown {
    return this.state === undefined ? "undefined" : this.state;
  }
  @callable()
  write(v: number): void {
    this.setState({ v });
  }
  @callable()
  corrupt(): void {
    this.sql`UPDATE cf_agents_state SET state = ${"{oops"}`;
  }
}

export class BothHooksAgent extends Agent<unknown, { a: number }> {
  override onStateChanged(): void {}
  override onStateUpdate(): void {}
}

class BaseCallable extends Agent {
  @callable({ description: "from the base" })
  baseMethod(): string {
    return "base";
  }
  @callable({ description: "base version" })
  overridden(): string {
    return "base";
  }
}

export class TestCallableAgent extends BaseCallable {
  @callable()
  add(a: number, b: number): number {
    return a + b;
  }
  @callable()
  async asyncAdd(a: number, b: number): Promise<number> {
    await new Promise((r) => setTimeout(r, 5));
    return a + b;
  }
  @callable()
  nothing(): void {}
  @callable()
  nullValue(): null {
    return null;
  }
  @callable()
  echo(...args: unknown[]): unknown[] {
    return args;
  }
  @callable()
  fail(message: string): never {
    throw new Error(message);
  }
  @callable()
  failWithString(): never {
    throw "a string";
  }
  @callable({ description: "subclass version" })
  override overridden(): string {
    return "sub";
  }
  notCallable(): string {
    return "secret";
  }
  @callable({ streaming: true })
  stream(s: StreamingResponse, n: number): void {
    for (let i = 0; i < n; i++) s.send(i);
    s.end("done");
  }
  @callable({ streaming: true })
  async streamThenError(s: StreamingResponse): Promise<void> {
    s.send("first");
    s.error("it broke");
    events.push({ kind: "after-close", send: s.send("ignored"), end: s.end(), error: s.error("again") });
  }
  @callable({ streaming: true })
  async slowStream(s: StreamingResponse, ms: number): Promise<void> {
    s.send("first");
    await new Promise((r) => setTimeout(r, ms));
    s.end("last");
  }
  @callable({ streaming: true })
  async streamThrows(s: StreamingResponse): Promise<void> {
    s.send("partial");
    throw new Error("thrown mid-stream");
  }
  @callable()
  whoAmI(): unknown {
    const { agent, connection, request } = getCurrentAgent<TestCallableAgent>();
    return {
      agent: agent === this,
      name: agent?.name,
      connection: connection?.id ?? null,
      request: request !== undefined,
    };
  }
  @callable()
  async sleep(ms: number): Promise<string> {
    await new Promise((r) => setTimeout(r, ms));
    return "slept";
  }
  /** Plain method (stub RPC): how many connections the agent has open. */
  connectionCount(): number {
    return [...this.getConnections()].length;
  }
  @callable()
  kick(code: number): void {
    const connection = getCurrentAgent().connection!;
    setTimeout(() => connection.close(code, "kicked"), 20);
  }
  @callable()
  methods(): [string, unknown][] {
    return [...this.getCallableMethods()].sort(([a], [b]) => a.localeCompare(b));
  }
}

export class ConnectionsAgent extends Agent<unknown, { n: number }> {
  override initialState = { n: 0 };

  override getConnectionTags(connection: Connection, ctx: ConnectionContext): string[] {
    const role = new URL(ctx.request.url).searchParams.get("role");
    void connection;
    return role ? [role] : [];
  }

  override shouldConnectionBeReadonly(_connection: Connection, ctx: ConnectionContext): boolean {
    return new URL(ctx.request.url).searchParams.get("readonly") === "1";
  }

  override shouldSendProtocolMessages(_connection: Connection, ctx: ConnectionContext): boolean {
    return new URL(ctx.request.url).searchParams.get("protocol") !== "0";
  }

  override onConnect(connection: Connection, ctx: ConnectionContext): void {
    connection.setState({ joined: new URL(ctx.request.url).searchParams.get("user") ?? "anon" });
  }

  override onMessage(connection: Connection, message: string | ArrayBuffer | ArrayBufferView): void {
    if (typeof message !== "string") {
      connection.send(JSON.stringify({ type: "binary", bytes: (message as ArrayBuffer).byteLength }));
      return;
    }
    connection.send(JSON.stringify({ type: "echo", message }));
  }

  override onClose(connection: Connection, code: number): void {
    events.push({ kind: "close", id: connection.id, code });
  }

  override onRequest(request: Request): Response {
    return Response.json({ path: new URL(request.url).pathname, name: this.name, method: request.method });
  }

  @callable()
  shout(text: string, without?: string[]): number {
    this.broadcast(JSON.stringify({ type: "shout", text }), without);
    return [...this.getConnections()].length;
  }

  @callable()
  tagged(tag: string): string[] {
    return [...this.getConnections(tag)].map((c) => c.id).sort();
  }

  @callable()
  myState(): unknown {
    return getCurrentAgent().connection?.state ?? null;
  }

  @callable()
  tryWrite(): string {
    try {
      this.setState({ n: this.state.n + 1 });
      return "written";
    } catch (e) {
      return (e as Error).message;
    }
  }

  @callable()
  makeReadonly(id: string, on: boolean): boolean {
    const c = this.getConnection(id)!;
    this.setConnectionReadonly(c, on);
    return this.isConnectionReadonly(c);
  }

  @callable()
  queueSome(): string[] {
    return [];
  }
}

export class QuietAgent extends Agent<unknown, { x: number }> {
  static override options = { sendIdentityOnConnect: false };
  override initialState = { x: 1 };
}

export class SqlAgent extends Agent {
  override onStart(): void {
    this.sql`CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)`;
  }
  @callable()
  addNote(body: string): number {
    this.sql`INSERT INTO notes (body) VALUES (${body})`;
    return this.sql<{ n: number }>`SELECT count(*) AS n FROM notes`[0]!.n as number;
  }
  @callable()
  find(body: string): unknown[] {
    return this.sql`SELECT body FROM notes WHERE body = ${body}`;
  }
  @callable()
  bad(): unknown {
    try {
      this.sql`SELECT * FROM missing_table WHERE x = ${1}`;
      return null;
    } catch (e) {
      return { name: (e as Error).name, message: (e as Error).message, query: (e as any).query };
    }
  }
  @callable()
  async enqueue(values: number[]): Promise<void> {
    for (const v of values) await this.queue("record", v);
  }
  async record(v: number): Promise<void> {
    await new Promise((r) => setTimeout(r, 2));
    this.sql`CREATE TABLE IF NOT EXISTS seen (v INTEGER, seq INTEGER PRIMARY KEY AUTOINCREMENT)`;
    this.sql`INSERT INTO seen (v) VALUES (${v})`;
  }
  @callable()
  seen(): number[] {
    try {
      return this.sql<{ v: number }>`SELECT v FROM seen ORDER BY seq`.map((r) => r.v);
    } catch {
      return [];
    }
  }
  @callable()
  async selfDestruct(): Promise<void> {
    await this.destroy();
  }
  @callable()
  tables(): string[] {
    return this.sql<{
      name: string;
    }>`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'cf_agents_%' ORDER BY name`.map(
      (r) => r.name,
    );
  }
}

export class PropsAgent extends Agent<unknown, unknown, { role?: string }> {
  started = 0;
  seenProps: unknown = null;
  override onStart(props?: { role?: string }): void {
    this.started++;
    this.seenProps = props ?? null;
  }
  @callable()
  info(): unknown {
    return { started: this.started, props: this.seenProps };
  }
  async rpcInfo(): Promise<unknown> {
    return { started: this.started, props: this.seenProps, name: this.name };
  }
}

export const calls: { callback: string; payload: unknown; schedule?: unknown; name?: string }[] = [];

export class ScheduleAgent extends Agent {
  failures = 0;
  override onError(error: unknown): void {
    calls.push({ callback: "onError", payload: String(error) });
  }
  async ping(payload: unknown, schedule: unknown): Promise<void> {
    calls.push({ callback: "ping", payload, schedule, name: this.name });
  }
  async flaky(payload: { failTimes: number }): Promise<void> {
    calls.push({ callback: "flaky", payload });
    if (this.failures++ < payload.failTimes) throw new Error(`flaky #${this.failures}`);
  }
  async slow(payload: unknown): Promise<void> {
    calls.push({ callback: "slow", payload });
  }
  async at(
    when: number | string | { date: number },
    callback: string,
    payload?: unknown,
    options?: Record<string, unknown>,
  ): Promise<unknown> {
    const w = typeof when === "object" ? new Date(when.date) : when;
    return this.schedule(w, callback as keyof this, payload, options as never);
  }
  async every(
    seconds: number,
    callback: string,
    payload?: unknown,
    options?: Record<string, unknown>,
  ): Promise<unknown> {
    return this.scheduleEvery(seconds, callback as keyof this, payload, options as never);
  }
  async list(criteria: { type?: string; start?: number; end?: number } = {}): Promise<unknown[]> {
    return this.listSchedules({
      ...(criteria.type ? { type: criteria.type as never } : {}),
      timeRange: {
        ...(criteria.start ? { start: new Date(criteria.start) } : {}),
        ...(criteria.end ? { end: new Date(criteria.end) } : {}),
      },
    });
  }
  async get(id: string): Promise<unknown> {
    return (await this.getScheduleById(id)) ?? null;
  }
  async cancel(id: string): Promise<boolean> {
    return this.cancelSchedule(id);
  }
  /** Makes an interval row due now, as if its previous run started `startedAgo` seconds ago and is still going. */
  async forceDue(id: string, startedAgo: number): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    this
      .sql`UPDATE cf_agents_schedules SET running = 1, execution_started_at = ${now - startedAgo}, time = ${now} WHERE id = ${id}`;
    await this.ctx.storage.setAlarm(Date.now());
  }
  row(id: string): unknown {
    return (
      this.sql`SELECT running, time, execution_started_at FROM cf_agents_schedules WHERE id = ${id}`[0] ??
      null
    );
  }
  #release: (() => void) | undefined;
  async hold(): Promise<number | null> {
    this.#release = await this.keepAlive();
    return this.ctx.storage.getAlarm();
  }
  async letGo(): Promise<number | null> {
    this.#release?.();
    this.#release?.();
    return this.ctx.storage.getAlarm();
  }
  async alarmAt(): Promise<number | null> {
    return this.ctx.storage.getAlarm();
  }
}

export const mail: unknown[] = [];

export class MailAgent extends Agent {
  override async onEmail(email: import("@cairn/agents").AgentEmail): Promise<void> {
    const raw = new TextDecoder().decode(await email.getRaw());
    const { email: current } = getCurrentAgent();
    mail.push({
      name: this.name,
      from: email.from,
      to: email.to,
      subject: email.headers.get("subject"),
      raw,
      secure: email._secureRouted,
      inContext: current === email,
    });
    if (email.headers.get("subject") === "spam") email.setReject("no spam");
  }
}

/** What `getCurrentAgent()` says, as plain data. */
function current(self: Agent): Record<string, unknown> {
  const { agent, connection, request, email } = getCurrentAgent<Agent>();
  return {
    agent: agent === undefined ? null : agent.name,
    isThis: agent === self,
    connection: connection?.id ?? null,
    request: request ? new URL(request.url).pathname : null,
    email: email ? email.from : null,
  };
}

/** `getCurrentAgent()` in methods reached by stubs, by other agents and from handlers. */
export class ContextAgent extends Agent<{ ContextAgent: any }> {
  /** A plain method (not callable): reached by stub RPC. */
  whoAmI(): Record<string, unknown> {
    return current(this);
  }
  async whoAmIAsync(): Promise<Record<string, unknown>> {
    await new Promise((r) => setTimeout(r, 5));
    return current(this);
  }
  /** Asks another agent, by stub, what it sees: it must see itself, not this agent's connection. */
  @callable()
  async askOther(name: string): Promise<{ mine: unknown; theirs: unknown }> {
    const theirs = await this.env.ContextAgent.getByName(name).whoAmI();
    return { mine: current(this), theirs };
  }
  /** A callable calling a plain method of its own: the connection stays. */
  @callable()
  viaHelper(): Record<string, unknown> {
    return this.whoAmI();
  }
  override onRequest(request: Request): Response {
    void request;
    return Response.json(this.whoAmI());
  }
  /** `getCurrentAgent()` after an await and in a timer started by the method. */
  async later(): Promise<Record<string, unknown>> {
    return await new Promise((resolve) => setTimeout(() => resolve(current(this)), 5));
  }
}

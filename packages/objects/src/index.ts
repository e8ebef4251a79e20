/**
 * `@cairn/objects`: Cairn's Durable Objects host (SPEC §13.7). See docs/objects.md.
 *
 * ```ts
 * import { createObjectHost, DurableObject } from "@cairn/objects";
 * class Counter extends DurableObject {
 *   increment() { const n = (this.ctx.storage.kv.get<number>("n") ?? 0) + 1; this.ctx.storage.kv.put("n", n); return n; }
 * }
 * const host = createObjectHost({ dir: ".cairn/do", objects: [{ binding: "COUNTER", class: Counter }] });
 * await host.namespaces.COUNTER!.getByName("a").increment();
 * ```
 */
export { DurableObject, type DurableObjectClass, isDurableObjectClass } from "./durable-object.ts";
export {
  checkForwardOptions,
  FORWARD_SECRET_NAME,
  ForwardClient,
  type ForwardListenOptions,
  ForwardServer,
  type ForwardTarget,
  OwnerUnreachable,
} from "./forward.ts";
export {
  createObjectHost,
  DurableObjectNamespace,
  type DurableObjectStub,
  missingMigration,
  type NamespaceInfo,
  type ObjectBinding,
  type ObjectDetail,
  ObjectHost,
  type ObjectHostOptions,
} from "./host.ts";
export { DurableObjectId } from "./ids.ts";
export * from "./limits.ts";
export {
  type Migration,
  type MigrationAction,
  MigrationError,
  type MigrationPlan,
  planMigrations,
} from "./migrations.ts";
export type { DueAlarm, ObjectRecord } from "./registry.ts";
export { splitStatements } from "./sql-split.ts";
export { DurableObjectState } from "./state.ts";
export {
  type AlarmAccess,
  type DurableObjectTransaction,
  type ListOptions,
  MAX_KEYS_PER_CALL,
  ObjectStorage,
  type ReplicatedEntry,
  restoreDatabase,
  SNAPSHOT_BYTES,
  SNAPSHOT_EVERY,
  SqlError,
  type SqlStorage,
  SqlStorageCursor,
  SqlStorageStatement,
  type SqlStorageValue,
  type SyncKvStorage,
} from "./storage.ts";
export { bridge, type UpgradeListener, type UpgradeOptions, upgradeListener } from "./upgrade.ts";
export {
  installWorkersGlobals,
  Response,
  responseWebSocket,
  WebSocket,
  type WebSocketData,
  WebSocketPair,
  WebSocketRequestResponsePair,
} from "./websocket.ts";

export { instanceColumn } from "./columns.ts";
export { createdRow, createWith, type RowWriters } from "./commit.ts";
export { decodeCursor, encodeCursor, parseCursor } from "./cursor.ts";
export { StoreError, type StoreErrorCode } from "./errors.ts";
export {
  expandHistoryRow,
  type HistoryDataJson,
  type HistoryRowValues,
  historyPage,
  MAX_PACKED_ENTRIES,
  PACKED_HISTORY_TYPE,
  type PackedEntry,
  packedMetricsRows,
  packHistory,
  type StoredHistoryRow,
} from "./history-rows.ts";
export { type ListShape, listQuery, pageOf } from "./list.ts";
export { TransactionListeners } from "./listeners.ts";
export type {
  AcquiredObject,
  HeldObject,
  ObjectLogEntry,
  ObjectMigration,
  ObjectReplica,
  ReplicaAlarm,
  ReplicaObject,
} from "./objects.ts";
export {
  type ColumnReaders,
  nullableNumber,
  type RowReader,
  rowReader,
  type SqlRow,
  statusCount,
} from "./rows.ts";
export type {
  EventStore,
  HistoryStore,
  InstanceStore,
  RewindFrom,
  ScheduleStore,
  StepStore,
  Store,
  StoreCapabilities,
  StoreTx,
  WorkQueue,
} from "./store.ts";
export type {
  ClaimedInstance,
  ClaimOptions,
  EventRow,
  InstanceCreate,
  InstanceGuard,
  InstancePage,
  InstancePatch,
  InstanceRow,
  ListInstancesQuery,
  NewInstance,
  ScheduleKey,
  ScheduleRow,
  StepCommit,
  StepRow,
  StepStatus,
  StoreMessage,
} from "./types.ts";

export { instanceColumn } from "./columns.ts";
export { commitStepWith, createdRow, createWith } from "./commit.ts";
export { decodeCursor, encodeCursor, parseCursor } from "./cursor.ts";
export type { EventStore, HistoryStore, InstanceStore, StepStore, Store, StoreTx } from "./store.ts";
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
  StepCommit,
  StepRow,
  StepStatus,
  StoreMessage,
} from "./types.ts";

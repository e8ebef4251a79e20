/**
 * Durable Objects on a store shared by workers (SPEC §13.7): the owning worker keeps an object's
 * SQLite database locally and ships each committed transaction to the replica; another worker that
 * takes the object over (after the owner's lease ran out) restores it from there. Ownership is a
 * lease with an epoch, like instances': every write to the replica is fenced by it.
 */

/** One committed transaction of an object (a session changeset), or its whole database (a snapshot). */
export interface ObjectLogEntry {
  /** Increases by one per entry of the object, from 1. */
  seq: number;
  kind: "changeset" | "snapshot";
  bytes: Uint8Array;
}

/** What `acquire` found: the object is the caller's now, with what restores it. */
export interface AcquiredObject {
  acquired: true;
  /** The fence of every later write; higher than any earlier owner's. */
  epoch: number;
  /** The latest snapshot (if any) and the changesets after it, in `seq` order. */
  log: ObjectLogEntry[];
  /** The object's alarm as last shipped, or null. */
  alarm: number | null;
}

/** What `acquire` found: another worker's lease on the object has not run out. */
export interface HeldObject {
  acquired: false;
  owner: string;
  leaseUntil: number;
  /** Where that worker takes requests forwarded to its objects, if it said (see `acquire`'s `url`). */
  ownerUrl?: string;
}

/** An object as the store knows it. */
export interface ReplicaObject {
  id: string;
  name: string | null;
  createdAt: number | null;
  /** When a worker last took it. */
  lastAccess: number | null;
  alarm: number | null;
  /** The worker holding it, while its lease runs. */
  owner: string | null;
}

/** One wrangler migration's renames and deletes, as the replica carries them out. */
export interface ObjectMigration {
  tag: string;
  actions: (
    | { kind: "rename"; from: string; to: string }
    | { kind: "delete"; className: string }
    | { kind: "create"; className: string }
  )[];
}

/** An alarm of an object no live worker owns (or the asking worker owns), due by the time asked. */
export interface ReplicaAlarm {
  className: string;
  id: string;
  time: number;
}

export interface ObjectReplica {
  /**
   * Each class's namespace key (ids from names are derived from it), the same for every worker:
   * the stored one, or the one proposed here when none is stored yet. Names that are not class
   * names are kept the same way: `cairn:forward` is the secret that requests workers forward to
   * each other carry.
   */
  namespaceKeys(proposed: Record<string, Uint8Array>): Promise<Record<string, Uint8Array>>;
  /**
   * Takes the object for `owner` until `now + leaseMs`, unless another owner's lease is still
   * running at `now`. Taking it bumps its epoch (an owner taking it again too). `url` is where the
   * owner takes requests other workers forward to the object; the others get it in `HeldObject`.
   */
  acquire(o: {
    className: string;
    id: string;
    owner: string;
    now: number;
    leaseMs: number;
    url?: string;
    /** The name the object was reached by, if any (kept from the first time one is given). */
    name?: string;
  }): Promise<AcquiredObject | HeldObject>;
  /** A class's objects as the store has them, most recently taken first (listing from any worker). */
  list(className: string, page: { limit: number; offset: number }): Promise<ReplicaObject[]>;
  /** One object as the store has it. */
  get(className: string, id: string): Promise<ReplicaObject | undefined>;
  /** How many objects each class has in the store. */
  count(classNames: string[]): Promise<Record<string, number>>;
  /** What restores the object (its latest snapshot and the changesets after it), without taking it. */
  log(className: string, id: string): Promise<ObjectLogEntry[]>;
  /**
   * Appends an entry while `owner` still holds the object with `epoch`; a snapshot replaces every
   * entry before it. `alarm` (when given) becomes the object's alarm in the same write. Returns
   * false, writing nothing, when fenced (another worker took the object over).
   */
  append(o: {
    className: string;
    id: string;
    owner: string;
    epoch: number;
    entry: ObjectLogEntry;
    alarm?: number | null;
  }): Promise<boolean>;
  /**
   * Applies wrangler `migrations[]` once per store (SPEC §13.7), under a lock: `plan` gets the tags
   * applied so far (in order) and returns the migrations still to apply, each in its own
   * transaction with its tag. A renamed class keeps its objects and its namespace key (so its ids);
   * a deleted class loses everything. Returns the tags applied now. Runs before `namespaceKeys`.
   */
  migrate(plan: (applied: string[]) => ObjectMigration[], now: number): Promise<string[]>;
  /** Moves the lease of every object `owner` holds to `leaseUntil`; returns how many. */
  renew(owner: string, leaseUntil: number): Promise<number>;
  /** Lets the object go (it was unloaded): any worker may take it at once. */
  release(className: string, id: string, owner: string, epoch: number): Promise<void>;
  /** Alarms due by `now` of objects nobody holds, whose lease ran out, or that `owner` holds. */
  dueAlarms(owner: string, now: number, limit: number): Promise<ReplicaAlarm[]>;
  /** The earliest alarm of the objects `dueAlarms` would return, or null. */
  nextAlarm(owner: string, now: number): Promise<number | null>;
}

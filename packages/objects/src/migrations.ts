/** One entry of wrangler's `migrations[]`. */
export interface Migration {
  tag: string;
  new_sqlite_classes?: string[];
  /** KV-backed classes on Cloudflare; Cairn gives them the same SQLite storage. */
  new_classes?: string[];
  renamed_classes?: { from: string; to: string }[];
  deleted_classes?: string[];
}

/** What one migration does to the store, in order. */
export type MigrationAction =
  | { kind: "create"; className: string }
  | { kind: "rename"; from: string; to: string }
  | { kind: "delete"; className: string };

export interface MigrationPlan {
  /** Classes that exist once every migration has run. */
  classes: Set<string>;
  /** Migrations not yet applied to this store, in order, with their actions. */
  pending: { tag: string; actions: MigrationAction[] }[];
}

/** A migrations list that cannot be applied; the message names the tag and the class. */
export class MigrationError extends Error {
  override name = "MigrationError";
}

/**
 * Decides which migrations still have to run on a store that has applied `applied` (tags, in
 * order), and which classes exist afterwards. Pure: the host carries out the actions. Applied tags
 * must be the first tags of `migrations`, in the same order (as on Cloudflare, a migration once
 * applied cannot be edited away).
 */
export function planMigrations(migrations: readonly Migration[], applied: readonly string[]): MigrationPlan {
  const tags = new Set<string>();
  for (const m of migrations) {
    if (typeof m?.tag !== "string" || m.tag === "") throw new MigrationError("every migration needs a tag");
    if (tags.has(m.tag)) throw new MigrationError(`migration tag "${m.tag}" appears twice`);
    tags.add(m.tag);
  }
  applied.forEach((tag, i) => {
    if (migrations[i]?.tag !== tag)
      throw new MigrationError(
        tags.has(tag)
          ? `migration "${tag}" was applied to this store as number ${i + 1}, but the configuration lists it elsewhere`
          : `this store has applied migration "${tag}", which the configuration no longer lists`,
      );
  });
  const classes = new Set<string>();
  const pending: MigrationPlan["pending"] = [];
  migrations.forEach((m, i) => {
    const actions: MigrationAction[] = [];
    for (const c of [...(m.new_sqlite_classes ?? []), ...(m.new_classes ?? [])]) {
      if (classes.has(c)) throw new MigrationError(`migration "${m.tag}": class ${c} already exists`);
      classes.add(c);
      actions.push({ kind: "create", className: c });
    }
    for (const r of m.renamed_classes ?? []) {
      if (!classes.has(r.from))
        throw new MigrationError(`migration "${m.tag}": renamed class ${r.from} does not exist`);
      if (classes.has(r.to)) throw new MigrationError(`migration "${m.tag}": class ${r.to} already exists`);
      classes.delete(r.from);
      classes.add(r.to);
      actions.push({ kind: "rename", from: r.from, to: r.to });
    }
    for (const c of m.deleted_classes ?? []) {
      if (!classes.has(c))
        throw new MigrationError(`migration "${m.tag}": deleted class ${c} does not exist`);
      classes.delete(c);
      actions.push({ kind: "delete", className: c });
    }
    if (i >= applied.length) pending.push({ tag: m.tag, actions });
  });
  return { classes, pending };
}

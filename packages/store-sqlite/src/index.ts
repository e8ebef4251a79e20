export { type BackupResult, backupSqliteStore } from "./backup.ts";
export { mapSqliteError } from "./errors.ts";
export { LATEST_VERSION, MIGRATIONS } from "./migrations.ts";
export {
  DEFAULT_SQLITE_CACHE_MIB,
  openSqliteStore,
  SqliteStore,
  type SqliteStoreOptions,
  sqliteRows,
} from "./sqlite-store.ts";

export { mapPostgresError, PostgresStoreError, type PostgresStoreErrorCode } from "./errors.ts";
export { LATEST_VERSION, MIGRATIONS, type Migration } from "./migrations.ts";
export {
  type OpenPostgresStoreOptions,
  openPostgresStore,
  PostgresStore,
  type PostgresStoreOptions,
  type Queryable,
  type QueryResultLike,
} from "./postgres-store.ts";

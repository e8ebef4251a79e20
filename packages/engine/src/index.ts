export {
  type Cairn,
  type CairnOptions,
  createCairn,
  DEFAULT_STORE_PATH,
  type ObjectConfig,
  POSTGRES_STORE_PACKAGE,
  type WorkflowConfig,
} from "./cairn.ts";

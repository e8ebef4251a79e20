export * from "./contract.ts";
export { toJson } from "./json.ts";
export * from "./operations.ts";
export * from "./workers.ts";

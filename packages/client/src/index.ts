export {
  type CairnClient,
  type ClientOptions,
  createClient,
  type InstancePage,
  type RestartFrom,
  type SubscribeOptions,
} from "./client.ts";
export { CairnApiError } from "./errors.ts";
export { parseSse, type SseMessage } from "./sse.ts";

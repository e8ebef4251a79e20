/**
 * `@cairn/agents` (for users `cairnjs/agents`, and `agents` inside `cairn dev`): Cloudflare's
 * Agents SDK on Cairn's Durable Objects (SPEC §13; docs/agents.md).
 */
export {
  Agent,
  type AgentStaticOptions,
  type ConnectionContext,
  DEFAULT_AGENT_STATIC_OPTIONS,
  type MCPServersState,
  nextCronTime,
  type QueueItem,
  type Schedule,
  type ScheduleCriteria,
  SqlError,
  type WSMessage,
} from "./agent.ts";
export type { Connection } from "./connection.ts";
export { type AgentContext, getCurrentAgent } from "./context.ts";
export { camelCaseToKebabCase, MAX_AGENT_NAME_LENGTH, MAX_STATE_BYTES } from "./names.ts";
export type { RetryOptions } from "./retries.ts";
export { type AgentOptions, type AgentRouteMatch, getAgentByName, routeAgentRequest } from "./routing.ts";
export {
  type CallableMetadata,
  callable,
  MessageType,
  type RPCRequest,
  type RPCResponse,
  StreamingResponse,
  unstable_callable,
} from "./rpc.ts";

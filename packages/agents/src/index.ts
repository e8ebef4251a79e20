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
export {
  type AgentEmail,
  computeAgentSignature,
  createAddressBasedEmailResolver,
  createCatchAllEmailResolver,
  createHeaderBasedEmailResolver,
  createSecureReplyEmailResolver,
  DEFAULT_MAX_AGE_SECONDS,
  type EmailResolver,
  type EmailResolverResult,
  type ForwardableEmailMessage,
  isAutoReplyEmail,
  MAX_CLOCK_SKEW_SECONDS,
  routeAgentEmail,
  type SignatureFailureReason,
  signAgentHeaders,
  verifyAgentSignature,
} from "./email.ts";
export { type AgentErrorCode, codedError, withCode } from "./errors.ts";
export {
  type ComposeOptions,
  composeEmail,
  emlDirectoryTransport,
  InboundEmailError,
  inboundEmail,
  type MailTransport,
  mailTransportFor,
  type OutboundEmail,
  type SendEmailBinding,
  sendEmailBinding,
  smtpTransport,
} from "./mail.ts";
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
export type * from "./workflow-types.ts";

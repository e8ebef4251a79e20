import { WorkflowError } from "./errors.ts";
import {
  MAX_EVENT_TYPE_LENGTH,
  MAX_INSTANCE_ID_LENGTH,
  MAX_PAYLOAD_BYTES,
  MAX_STEP_NAME_LENGTH,
  MAX_WORKFLOW_NAME_LENGTH,
  NAME_PATTERN,
} from "./limits.ts";

const describe = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : `a ${typeof v}`);

export function validateWorkflowName(name: unknown): string {
  if (typeof name !== "string" || name.length > MAX_WORKFLOW_NAME_LENGTH || !NAME_PATTERN.test(name))
    throw new WorkflowError(
      "workflow.invalid_name",
      `Workflow name ${describe(name)} is invalid: use at most ${MAX_WORKFLOW_NAME_LENGTH} letters, digits, "-" and "_", not starting with "-"`,
    );
  return name;
}

export function validateInstanceId(id: unknown): string {
  if (typeof id !== "string" || id.length > MAX_INSTANCE_ID_LENGTH || !NAME_PATTERN.test(id))
    throw new WorkflowError(
      "instance.invalid_id",
      `Instance ID ${describe(id)} is invalid: use at most ${MAX_INSTANCE_ID_LENGTH} letters, digits, "-" and "_", not starting with "-"`,
    );
  return id;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects
const CONTROL = /[\u0000-\u001f\u007f]/;

export function validateStepName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0)
    throw new WorkflowError(
      "step.invalid_name",
      `Step name must be a non-empty string, got ${describe(name)}`,
    );
  if (name.length > MAX_STEP_NAME_LENGTH)
    throw new WorkflowError(
      "step.invalid_name",
      `Step name "${name.slice(0, 40)}…" is ${name.length} characters long; the limit is ${MAX_STEP_NAME_LENGTH}`,
    );
  if (CONTROL.test(name))
    throw new WorkflowError(
      "step.invalid_name",
      `Step name ${JSON.stringify(name)} contains control characters`,
    );
  return name;
}

export function validateEventType(type: unknown): string {
  if (typeof type !== "string" || type.length > MAX_EVENT_TYPE_LENGTH || !NAME_PATTERN.test(type))
    throw new WorkflowError(
      "workflow.invalid_event_type",
      `Event type ${describe(type)} is invalid: use at most ${MAX_EVENT_TYPE_LENGTH} letters, digits, "-" and "_", not starting with "-"`,
    );
  return type;
}

/** Checks an encoded value against the 1 MiB limit; `what` names it in the message. */
export function checkPayloadSize(bytes: number, what: string, limit = MAX_PAYLOAD_BYTES): void {
  if (bytes > limit)
    throw new WorkflowError(
      "payload.too_large",
      `${what} is ${bytes} bytes encoded; the limit is ${limit} bytes (1 MiB)`,
    );
}

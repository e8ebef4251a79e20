/** `cairnjs/agents/react`: the React hook of an agent, `useAgent` (see docs/agents.md). */
export * from "@cairn/agents/react";

/** `cairnjs/agents/client`: the client of an agent (see docs/agents.md). */
export * from "@cairn/agents/client";

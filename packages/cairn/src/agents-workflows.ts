/** `cairnjs/agents/workflows`: workflows started by an Agent (see docs/agents.md). */
export * from "@cairn/agents/workflows";

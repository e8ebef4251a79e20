/** `cairnjs/agents`: Cloudflare's Agents SDK on Cairn (see docs/agents.md). */
export * from "@cairn/agents";

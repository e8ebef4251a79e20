/** `cairnjs/sandbox`: Sandboxes (SPEC §14); `@cloudflare/sandbox` inside projects. See docs/sandbox.md. */
export * from "@cairn/sandbox";

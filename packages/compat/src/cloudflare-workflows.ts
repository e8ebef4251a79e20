/** What `import … from "cloudflare:workflows"` loads under Cairn. */
export { NonRetryableError } from "@cairn/core";

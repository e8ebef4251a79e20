// `cairnjs/vitest`: Cairn's drop-in for Cloudflare's vitest integration; it lives in @cairn/vitest.
export * from "@cairn/vitest";

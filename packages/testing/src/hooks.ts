/** The runtime's hook composition, re-exported for `cairn/testing` users. */
export { composeHooks } from "@cairn/runtime";

/** The runtime's hook composition, re-exported for `cairnjs/testing` users. */
export { composeHooks } from "@cairn/runtime";

/**
 * Path parameters of the route groups, described once (`{name}` → its OpenAPI description).
 * Route files compose these instead of restating the descriptions, so one parameter reads the
 * same on every route that takes it.
 */

/** `/workflows/{name}`. */
export const workflowParams = { name: "workflow name" };
/** `/workflows/{name}/instances/{id}`. */
export const instanceParams = { ...workflowParams, id: "instance id" };
/** `/workflows/{name}/instances/{id}/events/{type}`. */
export const eventParams = { ...instanceParams, type: "event type" };

/** `/objects/{namespace}`. */
export const namespaceParams = { namespace: "binding or class name" };
/** `/objects/{namespace}/{id}`. */
export const objectParams = { ...namespaceParams, id: "the object's 64-hex id, or its name" };

/** `/sandboxes/{id}`. */
export const sandboxParams = { id: "the sandbox's id" };
/** `/sandboxes/{id}/processes/{processId}`. */
export const processParams = { ...sandboxParams, processId: "the process's id" };

/** `/workers/{wid}`. */
export const workerParams = { wid: "the worker's id (from registration)" };
/** `/workers/{wid}/tasks/{tid}`. */
export const taskParams = { ...workerParams, tid: "the task's id" };

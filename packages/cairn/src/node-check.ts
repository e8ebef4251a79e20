/**
 * Imported first by the package's entry: on a Node.js without `node:sqlite` the import fails with
 * one line naming the version found, the one needed and how to get it.
 */
import { nodeVersionProblem } from "@cairn/core";

const problem = nodeVersionProblem(process.versions.node);
if (problem) {
  const error = new Error(problem);
  // Only the line: the frames of this check would say nothing more.
  error.stack = `Error: ${problem}`;
  throw error;
}

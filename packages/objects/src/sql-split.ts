/**
 * Splits SQL text into statements at top-level semicolons, respecting quotes ('…', "…", `…`, […]),
 * comments (-- and /* *\/) and `CREATE TRIGGER … BEGIN … END` bodies. `node:sqlite` prepares only
 * the first statement of a string, while Cloudflare's `sql.exec` runs them all; SQLite's own
 * tokenizer is not exposed to JavaScript, hence this small scanner.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let depth = 0; // BEGIN/CASE … END nesting inside a trigger body
  let trigger: boolean | undefined; // decided at the statement's first words
  let i = 0;
  const n = sql.length;
  const push = (end: number) => {
    const text = sql.slice(start, end).trim();
    if (text && !isOnlyComments(text)) out.push(text);
    start = end + 1;
    depth = 0;
    trigger = undefined;
  };
  while (i < n) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === "`") {
      const close = sql.indexOf(c, i + 1);
      i = close < 0 ? n : close + 1;
      // Doubled quotes ('it''s') re-enter the loop at the second quote and are handled the same way.
      continue;
    }
    if (c === "[") {
      const close = sql.indexOf("]", i + 1);
      i = close < 0 ? n : close + 1;
      continue;
    }
    if (c === "-" && sql[i + 1] === "-") {
      const nl = sql.indexOf("\n", i + 2);
      i = nl < 0 ? n : nl + 1;
      continue;
    }
    if (c === "/" && sql[i + 1] === "*") {
      const close = sql.indexOf("*/", i + 2);
      i = close < 0 ? n : close + 2;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j]!)) j++;
      const word = sql.slice(i, j).toUpperCase();
      if (trigger === undefined) {
        const head = sql
          .slice(start, j + 40)
          .replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, " ")
          .trim()
          .toUpperCase();
        trigger = /^CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b/.test(head);
      }
      if (trigger) {
        if (word === "BEGIN" || word === "CASE") depth++;
        else if (word === "END" && depth > 0) depth--;
      }
      i = j;
      continue;
    }
    if (c === ";" && depth === 0) push(i);
    i++;
  }
  push(n);
  return out;
}

function isOnlyComments(text: string): boolean {
  return text.replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, "").trim() === "";
}

import { readFile, writeFile } from "node:fs/promises";
import { basename, extname, resolve } from "node:path";
import { type Command, Option } from "commander";
import { type CliContext, UsageError } from "../context.ts";

type Format = "svg" | "mermaid" | "json";

interface DiagramFlags {
  class?: string;
  format?: Format;
  out?: string;
}

/** `cairn diagram <file>`: a workflow's diagram from its source (never executed), as SVG, Mermaid or JSON. */
export function registerDiagram(parent: Command, ctx: CliContext): void {
  parent
    .command("diagram")
    .description("Draw the workflows defined in a source file (the code is parsed, never run)")
    .argument("<file>", "TypeScript or JavaScript file that defines workflow classes")
    .option("--class <name>", "which workflow class, when the file defines several")
    .addOption(
      new Option("--format <format>", "output format (default: from --out's extension, else svg)").choices([
        "svg",
        "mermaid",
        "json",
      ]),
    )
    .option("--out <file>", "write to this file instead of stdout")
    .addHelpText(
      "after",
      "\nExample:\n  cairn diagram src/checkout.ts --format mermaid\n  cairn diagram src/checkout.ts --out checkout.svg\n",
    )
    .action(async (file: string, options: DiagramFlags, command: Command) => {
      const path = resolve(ctx.io.cwd, file);
      const source = await readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
        throw new Error(e.code === "ENOENT" ? `No such file: ${file}` : `Cannot read ${file}: ${e.message}`);
      });
      const { analyzeWorkflows, toMermaid, toSvg } = await import("@cairn/diagram");
      const graphs = path.endsWith(".py")
        ? await pythonGraphs(path)
        : analyzeWorkflows(source, { filename: basename(path) });
      if (graphs.length === 0)
        throw new Error(`${file} defines no workflow class (a class extending WorkflowEntrypoint)`);
      const names = graphs.map((g) => g.workflow.class_name);
      const format: Format = ctx.globals(command).json
        ? "json"
        : (options.format ?? formatOf(options.out) ?? "svg");
      let selected = graphs;
      if (options.class !== undefined) {
        selected = graphs.filter((g) => g.workflow.class_name === options.class);
        if (selected.length === 0)
          throw new UsageError(
            `${file} has no workflow class "${options.class}"; it has ${names.join(", ")}`,
          );
      } else if (graphs.length > 1 && format !== "json") {
        throw new UsageError(
          `${file} defines ${graphs.length} workflow classes (${names.join(", ")}): pick one with --class`,
        );
      }
      let text: string;
      if (format === "json")
        text = JSON.stringify(
          options.class !== undefined || selected.length === 1 ? selected[0] : selected,
          null,
          2,
        );
      else if (format === "mermaid") text = toMermaid(selected[0]!);
      else text = await toSvg(selected[0]!);
      if (!text.endsWith("\n")) text += "\n";
      if (options.out) {
        await writeFile(resolve(ctx.io.cwd, options.out), text);
        if (!ctx.globals(command).json) ctx.io.stderr(`Wrote ${options.out} (${format})\n`);
      } else ctx.io.stdout(text);
    });
}

function formatOf(out: string | undefined): Format | undefined {
  const ext = out ? extname(out).toLowerCase() : "";
  if (ext === ".svg") return "svg";
  if (ext === ".mmd" || ext === ".mermaid" || ext === ".md") return "mermaid";
  if (ext === ".json") return "json";
  return undefined;
}

/** A `.py` workflow's graphs, from the `ast` analyzer of Cairn's Python SDK (`cairn_worker.diagram`). */
async function pythonGraphs(path: string): Promise<import("@cairn/diagram").WorkflowGraph[]> {
  const { pythonGraphs } = await import("@cairn/compat");
  return pythonGraphs(path);
}

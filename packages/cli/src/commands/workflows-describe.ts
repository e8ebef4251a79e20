import { INSTANCE_STATUSES } from "@cairn/core";
import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { field, formatDate, statusLabel, table } from "../format.ts";

/** `cairn workflows describe <workflow>`: one workflow and its instance counts per status. */
export function registerWorkflowsDescribe(parent: Command, ctx: CliContext): void {
  parent
    .command("describe")
    .description("Describe a workflow: its class, how many instances are in each status, and its schedules")
    .argument("<workflow>", "workflow name")
    .action(async (name: string, _options, command: Command) => {
      const w = await ctx.client(command).getWorkflow(name);
      if (ctx.globals(command).json) return ctx.print(command, "", w);
      const line = (label: string, value: string) =>
        field(label, value, { labelWidth: 16, width: ctx.io.columns });
      const counts = INSTANCE_STATUSES.map((s) => [statusLabel(s), String(w.instances?.[s] ?? 0)]);
      // Schedules (SPEC §9.4): each cron and when it next fires.
      const schedules = w.schedules?.length
        ? [
            "Schedules:",
            table(
              ["Cron", "Next"],
              w.schedules.map((x) => [x.cron, formatDate(x.next_at, { utc: ctx.io.utc })]),
              { indent: "  " },
            ),
            "",
          ]
        : [];
      ctx.io.stdout(
        [
          line("Name", w.name),
          line("Id", w.id),
          line("Class Name", w.class_name),
          line("Last Triggered", formatDate(w.triggered_on, { utc: ctx.io.utc })),
          "",
          "Instance Status Counts:",
          table(["Status", "Count"], counts, { indent: "  " }),
          "",
          ...schedules,
        ].join("\n"),
      );
    });
}

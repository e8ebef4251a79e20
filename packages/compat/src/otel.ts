/**
 * `cairn start --otel` (SPEC §12.4): starts `@opentelemetry/sdk-node` when the project installed it,
 * configured by the standard `OTEL_*` environment variables (exporter, endpoint, service name). It is
 * started in the thread that runs the workflows, where their spans are made. Without the package it
 * says so and goes on without traces.
 */
export async function startOpenTelemetry(log: (message: string, error?: unknown) => void): Promise<boolean> {
  // A variable specifier: the SDK is the project's optional dependency, not Cairn's.
  const specifier = "@opentelemetry/sdk-node";
  let sdk: { NodeSDK: new (config?: object) => { start(): void; shutdown(): Promise<void> } };
  try {
    sdk = await import(specifier);
  } catch {
    log(
      `Cairn: --otel needs ${specifier} installed in the project (npm install ${specifier}); no traces are sent`,
    );
    return false;
  }
  try {
    const node = new sdk.NodeSDK();
    node.start();
    process.once("beforeExit", () => void node.shutdown().catch(() => {}));
    return true;
  } catch (e) {
    log("Cairn: OpenTelemetry could not start; no traces are sent", e);
    return false;
  }
}

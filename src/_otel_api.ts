/**
 * The OpenTelemetry API, loaded by `_telemetry.ts` only when telemetry is on (a dynamic import of this module): a
 * user who does not turn it on never fetches the npm package.
 */

export * from "npm:@opentelemetry/api@^1.9.0";

/** Headless Chromium for the dashboard tests, through playwright-core. */

import { existsSync } from "node:fs";

/** The Chromium the dashboard tests drive (`$CHROMIUM`, else Debian's). */
export const CHROMIUM: string = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

/**
 * playwright-core's objects, untyped: its type declarations pull the DOM library into the whole type check, where it
 * clashes with Deno's own stream types. The few calls the tests make are typed by hand.
 */
// deno-lint-ignore no-explicit-any
export type Loose = any;

/** playwright-core's `chromium`, loaded by a specifier the type check does not follow (see {@linkcode Loose}). */
export async function loadChromium(): Promise<Loose> {
  const specifier = "playwright-core";
  return (await import(specifier)).chromium;
}

/**
 * The settings of a test that drives Chromium: skipped where there is none; sanitizers off, because playwright-core
 * drives Chromium through Node-compat child processes and sockets whose bookkeeping Deno's sanitizers attribute to
 * the test (each test closes everything in its `finally`).
 */
export const BROWSER_TEST: Pick<Deno.TestDefinition, "ignore" | "sanitizeOps" | "sanitizeResources"> = {
  ignore: !existsSync(CHROMIUM),
  sanitizeOps: false,
  sanitizeResources: false,
};

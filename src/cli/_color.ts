/**
 * Colour for terminal output: on when stderr is a terminal and `NO_COLOR` is unset or empty
 * (https://no-color.org), `FORCE_COLOR` forces it on. Hand-written: five SGR codes do not need a package.
 */

function enabled(): boolean {
  try {
    if ((Deno.env.get("NO_COLOR") ?? "") !== "") return false;
    if ((Deno.env.get("FORCE_COLOR") ?? "") !== "") return true;
  } catch {
    // No env permission: decide by the terminal alone.
  }
  return Deno.stderr.isTerminal();
}

const on = enabled();
const paint = (open: number, close: number) => (text: string) => on ? `\x1b[${open}m${text}\x1b[${close}m` : text;

/** The colours the CLI uses. */
export const color = {
  enabled: on,
  green: paint(32, 39),
  red: paint(31, 39),
  yellow: paint(33, 39),
  cyan: paint(36, 39),
  dim: paint(2, 22),
  bold: paint(1, 22),
};

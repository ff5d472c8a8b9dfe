/** The dashboard's static files, read next to this module (a file: or an https: URL alike) and kept. */

const FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
};

const cache = new Map<string, Promise<string>>();

/** The response for the dashboard file `name`, or `undefined` when there is no such file. */
export async function staticFile(name: string): Promise<Response | undefined> {
  const type = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
  if (type === undefined) return undefined;
  let text = cache.get(name);
  if (text === undefined) {
    text = fetch(new URL(`./dashboard/${name}`, import.meta.url)).then((response) => {
      if (!response.ok) throw new Error(`The dashboard file ${name} cannot be read (${response.status})`);
      return response.text();
    });
    cache.set(name, text);
    text.catch(() => cache.delete(name));
  }
  return new Response(await text, {
    headers: {
      "content-type": type,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "content-security-policy":
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
      "referrer-policy": "no-referrer",
    },
  });
}

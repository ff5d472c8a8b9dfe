/**
 * The service module against hostile requests (rebinding, cross-site writes, oversized and deep bodies, bad
 * escapes, symlinked and non-.py scripts, a full queue, stalled and aborting event-stream clients), its
 * event stream with resume, pruning, and the `bgproc serve` process (signals, port in use, a bad PORT).
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JobManager } from "../mod.ts";
import { createService } from "../src/service/mod.ts";
import { createServiceWith } from "../src/service/_service.ts";
import type { ManagerEvent } from "../src/service/_events.ts";
import { fixture, waitFor } from "./_helpers.ts";

const cli = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

/** A scripts folder with good scripts, a symlink out of it, a non-.py file and a subfolder. */
async function scriptsFolder(): Promise<{ dir: string; root: string }> {
  const root = await Deno.makeTempDir({ prefix: "bgproc-service-test-" });
  const dir = join(root, "scripts");
  await Deno.mkdir(join(dir, "sub"), { recursive: true });
  await Deno.mkdir(join(root, "outside"));
  for (const name of ["echo.py", "raise.py", "sleep.py", "chatty.py"]) {
    await Deno.copyFile(fixture(name), join(dir, name));
  }
  await Deno.writeTextFile(join(root, "outside", "evil.py"), "python_data = {'evil': True}\n");
  await Deno.symlink(join(root, "outside", "evil.py"), join(dir, "link.py"));
  await Deno.writeTextFile(join(dir, "notes.txt"), "python_data = {'notes': True}\n");
  await Deno.writeTextFile(join(dir, "sub", "deep.py"), "python_data = {}\n");
  return { dir, root };
}

/** A stand-in Blender that never starts a job (it sleeps until killed): jobs stay QUEUED or ACTIVE. */
/** A stand-in Blender that only sleeps: a process-mode job on it runs until killed (no warm Blender would be ready). */
async function sleepyBlender(root: string): Promise<string> {
  const path = join(root, "sleepy-blender");
  await Deno.writeTextFile(path, "#!/bin/sh\nexec sleep 60\n");
  await Deno.chmod(path, 0o755);
  return path;
}

const base = "http://127.0.0.1:8000";
function request(method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string> } = {}) {
  return new Request(`${base}${path}`, { method, ...init });
}
const jsonBody = (value: unknown) => ({ body: JSON.stringify(value), headers: { "content-type": "application/json" } });

Deno.test("service: hostile requests get JSON errors and start nothing", async () => {
  const { dir, root } = await scriptsFolder();
  try {
    await using manager = new JobManager({ mode: "process", blender: await sleepyBlender(root), maxWorkers: 1 });
    await using service = createService({ manager, scriptsDir: dir, maxBodyBytes: 1024, maxQueued: 3 });
    const call = async (req: Request, info?: { remoteAddr: Deno.Addr }) => {
      const response = await service.fetch(req, info);
      const body = await response.json();
      return { status: response.status, body, headers: response.headers };
    };
    const expect = async (req: Request, status: number, pattern: RegExp, info?: { remoteAddr: Deno.Addr }) => {
      const { status: got, body } = await call(req, info);
      equal(got, status, `${req.method} ${req.url}: ${JSON.stringify(body)}`);
      deepStrictEqual(Object.keys(body).sort(), ["detail", "error"]);
      match(`${body.error}: ${body.detail}`, pattern);
      ok(!/\/tmp\/|bgproc-service-test/.test(body.detail), `an error disclosed a server path: ${body.detail}`);
    };

    // DNS rebinding: another Host is refused, before anything else.
    await expect(new Request("http://evil.example:8000/jobs", { method: "GET" }), 403, /host/);
    await expect(new Request("http://127.0.0.1.evil.example/jobs"), 403, /host/);
    // Cross-site writes: another Origin, a browser's cross-site fetch, a text/plain "simple" request.
    const good = jsonBody({ script: "echo.py" });
    await expect(
      request("POST", "/jobs", { ...good, headers: { ...good.headers, origin: "http://evil.example" } }),
      403,
      /cross-site/,
    );
    await expect(
      request("POST", "/jobs", { ...good, headers: { ...good.headers, "sec-fetch-site": "cross-site" } }),
      403,
      /cross-site/,
    );
    await expect(request("POST", "/jobs", { body: good.body, headers: { "content-type": "text/plain" } }), 415, /json/);
    await expect(request("POST", "/jobs", { body: good.body }), 415, /json/);
    // Bodies: too large (declared, and streamed without a length), too deep, not JSON, not UTF-8.
    await expect(
      request("POST", "/jobs", jsonBody({ script: "echo.py", passedData: { x: "y".repeat(2000) } })),
      413,
      /large/,
    );
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1;
        controller.enqueue(new Uint8Array(512).fill(32));
        if (pulled > 400_000) controller.close(); // 200 MiB, if it were read whole
      },
    });
    await expect(
      request("POST", "/jobs", { body: endless, headers: { "content-type": "application/json" } }),
      413,
      /large/,
    );
    ok(pulled < 10, `the service read ${pulled} chunks of a body it should have cut off`);
    await expect(
      request("POST", "/jobs", { body: "[".repeat(100) + "]".repeat(100), headers: good.headers }),
      400,
      /deep/,
    );
    await expect(
      request("POST", "/jobs", { body: '{"script": "echo.py",', headers: good.headers }),
      400,
      /malformed JSON/,
    );
    await expect(
      request("POST", "/jobs", { body: new Uint8Array([0x7b, 0xff, 0x7d]), headers: good.headers }),
      400,
      /UTF-8/,
    );
    await expect(request("POST", "/jobs", jsonBody([1, 2])), 400, /object/);
    await expect(request("POST", "/jobs", jsonBody({ script: "echo.py", bogus: 1 })), 400, /bogus/);
    await expect(request("POST", "/jobs", jsonBody({ script: "echo.py", name: "../../x" })), 400, /name/);
    // Bad escapes, unknown paths and methods.
    await expect(request("GET", "/jobs/%E0%A4%A"), 400, /escape/);
    await expect(request("GET", "/jobs/%zz"), 400, /escape/);
    await expect(request("GET", "/nope"), 404, /not found/);
    await expect(request("PUT", "/jobs"), 405, /not allowed/);
    equal((await service.fetch(request("PATCH", "/events"))).headers.get("allow"), "GET");
    // Scripts: only regular .py files directly inside scriptsDir.
    for (const script of ["../outside/evil.py", "link.py", "notes.txt", "sub/deep.py", "sub", "/etc/passwd", 42, ""]) {
      await expect(request("POST", "/jobs", jsonBody({ script })), 400, /script/);
    }
    deepStrictEqual((await call(request("GET", "/scripts"))).body, ["chatty.py", "echo.py", "raise.py", "sleep.py"]);
    // Anything but loopback needs a token, even from an allowed Host.
    const remote = { remoteAddr: { transport: "tcp", hostname: "192.0.2.7", port: 5555 } as Deno.NetAddr };
    await expect(request("GET", "/jobs"), 403, /token/, remote);
    equal(manager.getJobNames().length, 0, "a hostile request started a job");

    // A full queue gets 429: one job runs (the stand-in sleeps), three wait, the rest are refused.
    const statuses: number[] = [];
    for (let i = 0; i < 1000; i++) {
      statuses.push((await service.fetch(request("POST", "/jobs", jsonBody({ script: "echo.py" })))).status);
      if (i === 0) await waitFor(() => manager.counts.active === 1, 10_000, "the first job to start");
    }
    equal(statuses.filter((status) => status === 201).length, 4);
    equal(statuses.filter((status) => status === 429).length, 996);
    const full = await call(request("POST", "/jobs", jsonBody({ script: "echo.py" })));
    equal(full.headers.get("retry-after"), "5");
    // The default timeout applies to jobs that set none.
    equal((await call(request("GET", "/jobs/job-1"))).body.timeout, 600_000);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("service: a token is needed everywhere but the dashboard's files; the dashboard keeps it in a cookie", async () => {
  const { dir, root } = await scriptsFolder();
  try {
    await using manager = new JobManager({ mode: "process", blender: await sleepyBlender(root) });
    await using service = createService({ manager, scriptsDir: dir, token: "s3cret-token" });
    equal((await service.fetch(request("GET", "/jobs"))).status, 401);
    equal(
      (await service.fetch(request("GET", "/jobs", { headers: { authorization: "Bearer wrong-token" } }))).status,
      401,
    );
    const ok200 = await service.fetch(request("GET", "/jobs", { headers: { authorization: "Bearer s3cret-token" } }));
    equal(ok200.status, 200);
    await ok200.body?.cancel();
    const page = await service.fetch(request("GET", "/"));
    equal(page.status, 200);
    match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    await page.body?.cancel();
    equal((await service.fetch(request("GET", "/?token=nope"))).status, 401);
    const login = await service.fetch(request("GET", "/?token=s3cret-token"));
    equal(login.status, 303);
    const cookie = login.headers.get("set-cookie") ?? "";
    match(cookie, /HttpOnly; SameSite=Strict/);
    const withCookie = await service.fetch(request("GET", "/scripts", { headers: { cookie: cookie.split(";")[0]! } }));
    equal(withCookie.status, 200);
    await withCookie.body?.cancel();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Read an SSE body into events until `until` says stop. */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  until: (events: { id?: string; event?: string; data?: string; retry?: string }[]) => boolean,
) {
  const events: { id?: string; event?: string; data?: string; retry?: string }[] = [];
  let buffer = "";
  let comments = 0;
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (!until(events)) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (block.startsWith(":")) {
          comments++;
          continue;
        }
        const event: Record<string, string> = {};
        for (const line of block.split("\n")) {
          const colon = line.indexOf(":");
          event[line.slice(0, colon)] = line.slice(colon + 2);
        }
        events.push(event);
      }
    }
  } finally {
    await reader.cancel();
  }
  return { events, comments };
}

Deno.test("service: one event stream with ids, retry hint and Last-Event-ID resume; finished jobs pruned; reports without paths", async () => {
  const { dir, root } = await scriptsFolder();
  try {
    await using manager = new JobManager({ maxWorkers: 2 });
    await using service = createService({ manager, scriptsDir: dir, keepFinished: 1 });
    const controller = new AbortController();
    const stream = await service.fetch(new Request(`${base}/events`, { signal: controller.signal }));
    equal(stream.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const add = async (body: unknown) => {
      const response = await service.fetch(request("POST", "/jobs", jsonBody(body)));
      equal(response.status, 201);
      return (await response.json()).name as string;
    };
    await add({ script: "echo.py", name: "first", passedData: { n: 1 } });
    await add({ script: "raise.py", name: "second" });
    const ended = (events: { event?: string; data?: string }[], name: string) =>
      events.some((e) => e.event === "state" && /"(COMPLETED|DROPPED)"/.test(e.data!) && e.data!.includes(`"${name}"`));
    const { events } = await readEvents(stream.body!, (events) => ended(events, "first") && ended(events, "second"));
    controller.abort();
    equal(events[0]!.retry, "2000");
    equal(events[1]!.event, "snapshot");
    const ids = events.slice(1).map((event) => Number(event.id));
    ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), `ids must rise: ${ids}`);
    ok(events.some((e) => e.event === "state" && e.data!.includes('"ACTIVE"')));

    // The dropped job's report: the Python error, no server paths, no command line.
    const second = await (await service.fetch(request("GET", "/jobs/second"))).json();
    equal(second.state, "DROPPED");
    equal(second.reason, "error");
    match(second.report, /ValueError: bad value: 42/);
    match(second.report, /File "raise.py"/);
    ok(!second.report.includes("/"), `the report shows a path: ${second.report}`);
    ok(!/--python|blender -b/.test(second.report));

    // keepFinished: 1: the older finished job was pruned, with a `removed` event.
    await waitFor(() => manager.getJobNames().length === 1, 10_000, "pruning");
    const mid = events.find((e) => e.event === "state" && e.data!.includes('"first"'))!.id!;
    const resumed = await service.fetch(new Request(`${base}/events`, { headers: { "last-event-id": mid } }));
    const replay = await readEvents(resumed.body!, (events) => events.some((e) => e.event === "removed"));
    ok(replay.events.every((e) => e.event !== "snapshot"), "a resume within history must not start with a snapshot");
    ok(replay.events.slice(1).every((e) => Number(e.id) > Number(mid)));
    match(replay.events.find((e) => e.event === "removed")!.data!, /"first"/);
    // An id from before the history (or garbage) gets a snapshot.
    const stale = await service.fetch(new Request(`${base}/events`, { headers: { "last-event-id": "nonsense" } }));
    equal((await readEvents(stale.body!, (events) => events.length >= 2)).events[1]!.event, "snapshot");
    await waitFor(() => service.eventClients === 0, 5000, "clients to be forgotten");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Events from a test: `push` them, and the service streams them as if the manager had. */
function fakeEvents() {
  const queue: ManagerEvent[] = [];
  let wake: (() => void) | undefined;
  return {
    push(event: ManagerEvent) {
      queue.push(event);
      wake?.();
    },
    source: async function* (signal: AbortSignal): AsyncGenerator<ManagerEvent> {
      const onAbort = () => wake?.();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        while (!signal.aborted) {
          const event = queue.shift();
          if (event !== undefined) yield event;
          else await new Promise<void>((resolve) => wake = resolve);
          wake = undefined;
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    },
  };
}

Deno.test("service: a stalled event client is dropped, aborting clients are forgotten, shutdown ends open streams", async () => {
  const { dir, root } = await scriptsFolder();
  try {
    await using manager = new JobManager({ mode: "process", blender: await sleepyBlender(root) });
    const events = fakeEvents();
    const service = createServiceWith({ manager, scriptsDir: dir }, events.source);
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    try {
      const { port } = server.addr;
      // 1,000 clients that connect and abort.
      for (let i = 0; i < 1000; i += 100) {
        await Promise.all(Array.from({ length: 100 }, async () => {
          const controller = new AbortController();
          const response = await fetch(`http://127.0.0.1:${port}/events`, { signal: controller.signal });
          controller.abort();
          await response.body?.cancel().catch(() => {});
        }));
      }
      await waitFor(() => service.eventClients === 0, 10_000, "aborted clients to be forgotten");

      // A client that sends its request and never reads.
      const stalled = await Deno.connect({ hostname: "127.0.0.1", port });
      await stalled.write(new TextEncoder().encode(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
      await waitFor(() => service.eventClients === 1, 5000, "the stalled client to connect");
      const line = "x".repeat(4096);
      for (let i = 0; i < 5000 && service.eventClients > 0; i++) {
        events.push({ type: "log", name: "job-x", attempt: 1, stream: "stdout", line });
        if (i % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await waitFor(() => service.eventClients === 0, 10_000, "the stalled client to be dropped");
      stalled.close();

      // A reading client stays connected until shutdown ends its stream.
      const reading = await fetch(`http://127.0.0.1:${port}/events`);
      await waitFor(() => service.eventClients === 1, 5000, "the reader to connect");
      const drained = reading.body!.pipeTo(new WritableStream());
      await service.close();
      await drained;
      equal(service.eventClients, 0);
    } finally {
      await service.close();
      await server.shutdown();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function serveProcess(env: Record<string, string>, ...args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      cli,
      "serve",
      "--scripts",
      fileURLToPath(new URL("../examples/scripts", import.meta.url)),
      ...args,
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("bgproc serve: SIGTERM with an event client connected shuts down; a bad PORT or a port in use is one line", async () => {
  const bad = await serveProcess({ PORT: "abc" }).output();
  equal(bad.code, 2);
  const badText = new TextDecoder().decode(bad.stderr).trim();
  equal(badText.split("\n").length, 1, badText);
  match(badText, /^bgproc: .*port.*'abc'/);

  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = await serveProcess({ PORT: String(listener.addr.port) }).output();
  const busyText = new TextDecoder().decode(busy.stderr).trim();
  equal(busyText.split("\n").length, 1, busyText);
  match(busyText, /^bgproc: Cannot listen on 127\.0\.0\.1:\d+: the port is in use$/);

  const open = await serveProcess({}, "--host", "0.0.0.0", "--port", "0").output();
  match(new TextDecoder().decode(open.stderr), /^bgproc: Cannot serve on 0\.0\.0\.0 without a token/);

  const child = serveProcess({ PORT: "0" }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/http:\/\/[\d.]+:\d+\//.test(text)) {
    const { value, done } = await lines.read();
    if (done) break;
    text += value;
  }
  const url = /http:\/\/[\d.]+:\d+\//.exec(text)![0];
  const events = await fetch(`${url}events`);
  const reading = events.body!.pipeTo(new WritableStream());
  child.kill("SIGTERM");
  await reading;
  const rest = [];
  while (true) {
    const { value, done } = await lines.read();
    if (done) break;
    rest.push(value);
  }
  const status = await child.status;
  await child.stdout.cancel();
  equal(status.code, 0);
  match(rest.join(""), /bgproc service stopped/);
});

Deno.test("service outputs: each job gets a folder; its images are listed, served and removed with the job", async () => {
  const { dir, root } = await scriptsFolder();
  try {
    const outputsDir = join(root, "outputs");
    await Deno.mkdir(outputsDir);
    await Deno.writeTextFile(
      join(dir, "draw.py"),
      `import base64, os
out = passed_data["output_dir"]
png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
with open(os.path.join(out, "frame_001.png"), "wb") as handle:
    handle.write(png)
with open(os.path.join(out, "notes.txt"), "w") as handle:
    handle.write("not an image")
os.symlink("/etc/passwd", os.path.join(out, "link.png"))
python_data = {"wrote": True}
`,
    );
    await using manager = new JobManager();
    await using service = createService({ manager, scriptsDir: dir, outputsDir });
    const added = await service.fetch(request("POST", "/jobs", jsonBody({ script: "draw.py", name: "draw" })));
    equal(added.status, 201, await added.text());
    await manager.getJob("draw")!.result();
    const detail = await (await service.fetch(request("GET", "/jobs/draw"))).json();
    deepStrictEqual(detail.outputs, ["frame_001.png"]);
    ok(!("output_dir" in detail.passedData), "the output folder's server path is not shown");
    const image = await service.fetch(request("GET", "/jobs/draw/outputs/frame_001.png"));
    equal(image.status, 200);
    equal(image.headers.get("content-type"), "image/png");
    deepStrictEqual([...(await image.bytes()).slice(1, 4)], [0x50, 0x4e, 0x47]);
    for (const file of ["notes.txt", "link.png", "..%2Fx.png", "nope.png"]) {
      const response = await service.fetch(request("GET", `/jobs/draw/outputs/${file}`));
      equal(response.status, 404, file);
      await response.body?.cancel();
    }
    equal([...Deno.readDirSync(outputsDir)].length, 1);
    const removed = await service.fetch(request("DELETE", "/jobs/draw"));
    equal(removed.status, 200);
    await removed.body?.cancel();
    await waitFor(() => [...Deno.readDirSync(outputsDir)].length === 0, 5000, "the job's outputs to be removed");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("service outputs: output images are streamed (a 1 GiB image costs no memory); large ones are not thumbnails", async () => {
  const { dir, root } = await scriptsFolder();
  try {
    const outputsDir = join(root, "outputs");
    await Deno.mkdir(outputsDir);
    // A sparse 1 GiB "image" (it takes no disk) and a small one.
    await Deno.writeTextFile(
      join(dir, "big.py"),
      `import os
out = passed_data["output_dir"]
with open(os.path.join(out, "big.png"), "wb") as handle:
    handle.truncate(1 << 30)
with open(os.path.join(out, "small.png"), "wb") as handle:
    handle.write(b"\\x89PNG")
`,
    );
    await using manager = new JobManager({ mode: "fork" });
    await using service = createService({ manager, scriptsDir: dir, outputsDir });
    const added = await service.fetch(request("POST", "/jobs", jsonBody({ script: "big.py", name: "big" })));
    equal(added.status, 201, await added.text());
    await manager.getJob("big")!.result();
    const detail = await (await service.fetch(request("GET", "/jobs/big"))).json();
    deepStrictEqual(detail.outputs, ["big.png", "small.png"]);
    deepStrictEqual(detail.thumbnails, ["small.png"], "a 1 GiB image would be a thumbnail");
    const before = Deno.memoryUsage().rss;
    // Two clients that read a few bytes and go: a service that reads the file whole holds 2 GiB here.
    for (let i = 0; i < 2; i++) {
      const response = await service.fetch(request("GET", "/jobs/big/outputs/big.png"));
      equal(response.status, 200);
      equal(response.headers.get("content-length"), String(1 << 30));
      const reader = response.body!.getReader();
      ok(((await reader.read()).value?.byteLength ?? 0) > 0);
      await reader.cancel();
    }
    const grown = (Deno.memoryUsage().rss - before) / 2 ** 20;
    ok(grown < 256, `serving a 1 GiB image twice took ${grown.toFixed(0)} MiB`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("service: event history is bounded in bytes, and a resume that would overflow a client gets a snapshot", async () => {
  const { dir, root } = await scriptsFolder();
  try {
    await using manager = new JobManager({ mode: "process", blender: await sleepyBlender(root) });
    const events = fakeEvents();
    await using service = createServiceWith({ manager, scriptsDir: dir }, events.source);
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, service.fetch);
    try {
      const { port } = server.addr;
      const added = await service.fetch(request("POST", "/jobs", jsonBody({ script: "echo.py", name: "job-x" })));
      equal(added.status, 201, await added.text());
      // A per-job client that never reads: dropped once its 1 MiB buffer is full.
      const stalled = await Deno.connect({ hostname: "127.0.0.1", port });
      await stalled.write(new TextEncoder().encode(`GET /jobs/job-x/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
      // 3,000 lines of 2,000 characters (the longest kept): 6 MB, under the 5,000-event count.
      const line = "x".repeat(2_000);
      for (let i = 0; i < 3000; i++) {
        events.push({ type: "log", name: "job-x", attempt: 1, stream: "stdout", line });
        if (i % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await waitFor(() => service.eventClients === 0, 10_000, "the stalled per-job client to be dropped");
      stalled.close();
      const firstEvent = async (lastEventId: string) => {
        const response = await fetch(`http://127.0.0.1:${port}/jobs/job-x/events`, {
          headers: { "last-event-id": lastEventId },
        });
        const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
        let text = "";
        while (!/event: \w+\n[^]*?\n\n/.test(text)) {
          const { value, done } = await reader.read();
          if (done) break; // Dropped at once: what a replay larger than the client's buffer did.
          text += value;
        }
        await reader.cancel();
        return /event: (\w+)/.exec(text)?.[1] ?? "nothing";
      };
      // From the first event: no longer in a history of at most 4 MiB (6 MB would have been kept before).
      equal(await firstEvent("1"), "snapshot");
      // From one kept but with more than the client's buffer after it: a snapshot, not a stream dropped at once.
      equal(await firstEvent("2900"), "log");
      equal(await firstEvent("2000"), "snapshot");
    } finally {
      await service.close();
      await server.shutdown();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** A service's answer to `req`. */
type ServiceCall = (req: Request) => Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;

/**
 * `POST /jobs/:name/priority` refused: a running job (409), no such job (404), bad bodies (400, 415), another method
 * (405), and cross-site writes (403), as every other write is. Job "run" runs; "b" is queued.
 */
async function checkPriorityRefusals(
  call: ServiceCall,
  expect: (req: Request, status: number, pattern: RegExp) => Promise<void>,
): Promise<void> {
  await expect(request("POST", "/jobs/run/priority", jsonBody({ priority: 1 })), 409, /^job not queued: .*ACTIVE/);
  await expect(request("POST", "/jobs/nope/priority", jsonBody({ priority: 1 })), 404, /no such job/);
  await expect(request("POST", "/jobs/b/priority", jsonBody({})), 400, /'priority' is missing/);
  await expect(request("POST", "/jobs/b/priority", jsonBody({ priority: 2.5 })), 400, /^bad priority: .*integer/);
  await expect(request("POST", "/jobs/b/priority", jsonBody({ prio: 1 })), 400, /did you mean 'priority'/);
  await expect(request("POST", "/jobs/b/priority", jsonBody([1])), 400, /JSON object/);
  await expect(request("POST", "/jobs/b/priority", { body: '{"priority": 1}' }), 415, /json/);
  const get = await call(request("GET", "/jobs/b/priority"));
  equal(get.status, 405);
  equal(get.headers.get("allow"), "POST");
  // Same guards as every other write: another origin, a browser's cross-site request.
  const good = jsonBody({ priority: 1 });
  await expect(
    request("POST", "/jobs/b/priority", { ...good, headers: { ...good.headers, origin: "http://evil.example" } }),
    403,
    /cross-site/,
  );
  await expect(
    request("POST", "/jobs/b/priority", { ...good, headers: { ...good.headers, "sec-fetch-site": "cross-site" } }),
    403,
    /cross-site/,
  );
}

Deno.test("service priorities: POST /jobs takes one, POST /jobs/:name/priority sets a queued job's (409 once it runs, 400, 404), retry keeps it, writes guarded as the others", async () => {
  const { dir, root } = await scriptsFolder();
  try {
    // One slot, taken for good by the stand-in Blender: every later job stays QUEUED.
    await using manager = new JobManager({ mode: "process", blender: await sleepyBlender(root), maxWorkers: 1 });
    await using service = createService({ manager, scriptsDir: dir });
    const call = async (req: Request) => {
      const response = await service.fetch(req);
      return { status: response.status, body: await response.json(), headers: response.headers };
    };
    const expect = async (req: Request, status: number, pattern: RegExp) => {
      const { status: got, body } = await call(req);
      equal(got, status, `${req.method} ${req.url}: ${JSON.stringify(body)}`);
      deepStrictEqual(Object.keys(body).sort(), ["detail", "error"]);
      match(`${body.error}: ${body.detail}`, pattern);
    };
    const stream = new AbortController();
    const events = await service.fetch(new Request(`${base}/events`, { signal: stream.signal }));
    const add = async (body: Record<string, unknown>) => {
      const { status, body: job } = await call(request("POST", "/jobs", jsonBody({ script: "echo.py", ...body })));
      equal(status, 201, JSON.stringify(job));
      return job;
    };
    await add({ name: "run" });
    await waitFor(() => manager.counts.active === 1, 10_000, "the first job to start");
    equal((await add({ name: "a", priority: 2 })).priority, 2);
    equal((await add({ name: "b" })).priority, 0);
    equal(manager.getJob("a")?.priority, 2);
    // The body's priority: checked as the manager checks it, and a typo gets a suggestion.
    await expect(
      request("POST", "/jobs", jsonBody({ script: "echo.py", prioirty: 1 })),
      400,
      /did you mean 'priority'/,
    );
    for (const priority of [1.5, "3", null, 1e12]) {
      await expect(
        request("POST", "/jobs", jsonBody({ script: "echo.py", priority })),
        400,
        /'priority' must be an int/,
      );
    }
    const list = (await call(request("GET", "/jobs"))).body as { name: string; priority: number }[];
    deepStrictEqual(list.map((job) => [job.name, job.priority]), [["run", 0], ["a", 2], ["b", 0]]);

    // Set: the job's summary back, the manager's queue changed, and a `priority` event on the stream.
    const set = await call(request("POST", "/jobs/b/priority", jsonBody({ priority: 7 })));
    equal(set.status, 200, JSON.stringify(set.body));
    equal(set.body.name, "b");
    equal(set.body.priority, 7);
    equal(set.body.state, "QUEUED");
    equal(manager.getJob("b")?.priority, 7);
    equal((await call(request("GET", "/jobs/b"))).body.priority, 7);
    const { events: streamed } = await readEvents(
      events.body!,
      (got) => got.some((e) => e.event === "priority" && e.data!.includes('"b"')),
    );
    stream.abort();
    deepStrictEqual(
      streamed.filter((e) => e.event === "priority").map((e) => JSON.parse(e.data!)),
      [{ type: "priority", name: "a", priority: 2 }, { type: "priority", name: "b", priority: 7 }],
      "the job added with a priority, then the one changed",
    );

    await checkPriorityRefusals(call, expect);
    equal(manager.getJob("b")?.priority, 7, "a refused request changed the priority");
    // With a token, it is needed here too.
    const good = jsonBody({ priority: 1 });
    await using guarded = createService({ manager, scriptsDir: dir, token: "s3cret-token" });
    equal((await guarded.fetch(request("POST", "/jobs/b/priority", good))).status, 401);
    const bearer = { ...good, headers: { ...good.headers, authorization: "Bearer s3cret-token" } };
    const allowed = await guarded.fetch(request("POST", "/jobs/b/priority", bearer));
    equal(allowed.status, 200);
    equal((await allowed.json()).priority, 1);

    // A retry runs again at the priority the job had.
    await call(request("POST", "/jobs/a/cancel"));
    const again = await call(request("POST", "/jobs/a/retry"));
    equal(again.status, 201, JSON.stringify(again.body));
    equal(again.body.priority, 2);
    equal(manager.getJob("a")?.priority, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/**
 * readBlendFile on files that real Blenders write during the test: plain,
 * compressed (zstd from 3.0, gzip before) and gzip made here as Blender 2.8
 * wrote it, checked against Blender's own listing of the same file.
 *
 * The Blenders: `$BLENDER` (else `blender` on PATH), plus each path in
 * `BGPROC_TEST_BLENDERS`, a colon-separated list of Blender executables or
 * wrappers, e.g. `BGPROC_TEST_BLENDERS=/var/cache/bgproc-blender/4.3/blender:/var/cache/bgproc-blender/5.2/blender`.
 * Files go under the system temp folder (/tmp), which the wrapped Blenders see.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { type BlendFileInfo, readBlendFile, readBlendFileSync } from "../mod.ts";

const BLENDERS = [
  ...new Set([
    Deno.env.get("BLENDER") ?? "blender",
    ...(Deno.env.get("BGPROC_TEST_BLENDERS") ?? "").split(":").filter((path) => path !== ""),
  ]),
];

/** The collections compared with Blender's listing: the ones a scene's content lives in. */
const COLLECTIONS = ["objects", "meshes", "materials", "collections", "scenes", "worlds", "cameras", "lights"];

/** Makes a known scene, saves it plain and compressed, reopens each and lists it as Blender sees it. */
const SCRIPT = `
import json, sys, bpy
out = sys.argv[sys.argv.index("--") + 1]
long_name = sys.argv[sys.argv.index("--") + 2]
collections = ${JSON.stringify(COLLECTIONS)}
# A library to link from, saved as a copy so the session's own file stays unsaved.
library = f"{out}/library.blend"
bpy.ops.wm.save_as_mainfile(filepath=library, copy=True)
with bpy.data.libraries.load(library, link=True) as (source, linked):
    linked.objects = ["Camera", "Light"]
for linked_object in linked.objects:
    bpy.context.scene.collection.objects.link(linked_object)
mesh = bpy.data.meshes.new("AlphaMesh")
mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
material = bpy.data.materials.new("Matériau Ω")
mesh.materials.append(material)
for name in ("Alpha", "Beta.001", long_name):
    bpy.context.scene.collection.objects.link(bpy.data.objects.new(name, mesh))
bpy.data.collections.new("Set").use_fake_user = True
listing = {"version": list(bpy.app.version_file), "files": {}}
for kind, compress in (("plain", False), ("compressed", True)):
    path = f"{out}/{kind}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=path, compress=compress)
for kind in ("plain", "compressed"):
    path = f"{out}/{kind}.blend"
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
    listing["files"][kind] = sorted(
        [c, b.name, b.library is not None] for c in collections for b in getattr(bpy.data, c)
    )
with open(f"{out}/listing.json", "w", encoding="utf-8") as handle:
    json.dump(listing, handle, ensure_ascii=False)
`;

interface Listing {
  readonly version: readonly [number, number, number];
  readonly files: Readonly<Record<"plain" | "compressed", readonly [string, string, boolean][]>>;
}

async function writeWithBlender(blender: string, dir: string): Promise<Listing> {
  const longName = `Long ${"é".repeat(120)} end`; // 248 bytes: Blender 5 keeps it whole, older Blenders cut it
  const { code, stdout, stderr } = await new Deno.Command(blender, {
    args: ["-b", "--factory-startup", "--python-exit-code", "1", "--python-expr", SCRIPT, "--", dir, longName],
    stdin: "null",
    signal: AbortSignal.timeout(180_000),
  }).output();
  const decoder = new TextDecoder();
  equal(code, 0, `${blender} failed:\n${decoder.decode(stdout).slice(-2000)}\n${decoder.decode(stderr).slice(-2000)}`);
  return JSON.parse(await Deno.readTextFile(join(dir, "listing.json")));
}

/** The IDs in COLLECTIONS, as [collection, name, linked], sorted as Python sorts them. */
function listed(info: BlendFileInfo): [string, string, boolean][] {
  const key = ([c, n, l]: [string, string, boolean]) => [c, n, l ? 1 : 0] as const;
  return info.ids.filter((id) => id.collection !== null && COLLECTIONS.includes(id.collection))
    .map((id): [string, string, boolean] => [id.collection!, id.name, id.linked]).sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      for (let i = 0; i < 3; i++) if (x[i]! !== y[i]!) return x[i]! < y[i]! ? -1 : 1;
      return 0;
    });
}

for (const blender of BLENDERS) {
  Deno.test(`readBlendFile lists what ${blender} wrote, plain, compressed and gzip, as Blender lists it`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "bgproc-blend-" });
    try {
      const listing = await writeWithBlender(blender, dir);
      const [major, minor, subversion] = listing.version;
      const versionNumber = major * 100 + minor;
      const plain = join(dir, "plain.blend");
      const gzip = join(dir, "gzip.blend");
      await Deno.writeFile(gzip, gzipSync(await Deno.readFile(plain))); // as Blender 2.8-2.9 compressed
      const cases = [
        [plain, "none", listing.files.plain],
        [join(dir, "compressed.blend"), versionNumber >= 300 ? "zstd" : "gzip", listing.files.compressed],
        [gzip, "gzip", listing.files.plain],
      ] as const;
      for (const [path, compression, expected] of cases) {
        const info = await readBlendFile(path);
        deepStrictEqual(readBlendFileSync(path), info, `${path}: sync and async disagree`);
        equal(info.compression, compression);
        equal(info.version, `${major}.${minor}`);
        equal(info.versionNumber, versionNumber);
        equal(info.subversion, subversion);
        // Blender 5.0 and newer write the 17-byte header and large block headers.
        equal(info.fileFormatVersion, versionNumber >= 500 ? 1 : 0);
        equal(info.pointerSize, 8);
        equal(info.endianness, "little");
        // Local IDs: exactly Blender's. Linked ones: the file holds placeholders only for the directly linked;
        // Blender also lists what those pull in from the library (their object data) once it opens the file.
        const ours = listed(info);
        deepStrictEqual(ours.filter(([, , linked]) => !linked), expected.filter(([, , linked]) => !linked));
        const blenderLinked = expected.filter(([, , linked]) => linked).map((id) => JSON.stringify(id));
        for (const id of ours.filter(([, , linked]) => linked)) ok(blenderLinked.includes(JSON.stringify(id)), `${id}`);
        for (const name of ["Alpha", "Beta.001"]) ok(expected.some(([c, n]) => c === "objects" && n === name));
        ok(info.ids.some((id) => id.code === "OB" && id.name === "Light" && id.linked), "a linked object is listed");
        ok(info.ids.some((id) => id.code === "LI" && id.name === "library.blend"), "its library is listed");
        ok(info.ids.some((id) => id.code === "MA" && id.name === "Matériau Ω"));
        ok(info.ids.some((id) => id.code === "OB" && id.name.startsWith("Long éé")), "the long name is read");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

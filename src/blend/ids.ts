/** ID codes: the two letters a .blend file tags each ID block with, and the `bpy.data` collections they belong to. */

/** One ID data-block in a .blend file. */
export interface BlendId {
  /** The two-letter ID code, e.g. `"OB"` (object), `"ME"` (mesh), `"MA"` (material). */
  readonly code: string;
  /** The name without its code prefix, e.g. `"Cube"`. */
  readonly name: string;
  /** The `bpy.data` collection it belongs to, e.g. `"objects"`, or `null` for codes bgproc does not map. */
  readonly collection: string | null;
  /** Whether it is linked from another .blend file (this file holds only a placeholder, after its `LI` block). */
  readonly linked: boolean;
}

/** The two-letter ID codes and the `bpy.data` collections they belong to (grease pencil aside: see {@linkcode collectionOf}). */
const ID_COLLECTIONS: Readonly<Record<string, string>> = {
  AC: "actions",
  AR: "armatures",
  BR: "brushes",
  CA: "cameras",
  CF: "cache_files",
  CU: "curves",
  CV: "hair_curves",
  GR: "collections",
  IM: "images",
  IP: "ipos",
  KE: "shape_keys",
  LA: "lights",
  LI: "libraries",
  LP: "lightprobes",
  LS: "linestyles",
  LT: "lattices",
  MA: "materials",
  MB: "metaballs",
  MC: "movieclips",
  ME: "meshes",
  MS: "masks",
  NT: "node_groups",
  OB: "objects",
  PA: "particles",
  PC: "paint_curves",
  PL: "palettes",
  PT: "pointclouds",
  SC: "scenes",
  SK: "speakers",
  SO: "sounds",
  SN: "screens",
  SR: "screens",
  TE: "textures",
  TX: "texts",
  VF: "fonts",
  VO: "volumes",
  WM: "window_managers",
  WO: "worlds",
  WS: "workspaces",
};

/**
 * The `bpy.data` collection of an ID code in a file written by Blender
 * `versionNumber`, or `null` for codes bgproc does not map. Grease pencil
 * moved: up to 4.x `GD` (legacy grease pencil) is `grease_pencils` and `GP`
 * (Grease Pencil v3) is `grease_pencils_v3`; from 5.0 `GP` is
 * `grease_pencils` and `GD` (now only annotations) is `annotations`.
 */
export function collectionOf(code: string, versionNumber: number): string | null {
  if (code === "GD") return versionNumber < 500 ? "grease_pencils" : "annotations";
  if (code === "GP") return versionNumber < 500 ? "grease_pencils_v3" : "grease_pencils";
  return Object.hasOwn(ID_COLLECTIONS, code) ? ID_COLLECTIONS[code]! : null;
}

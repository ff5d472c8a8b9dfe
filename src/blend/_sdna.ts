/**
 * The SDNA: the struct catalogue every .blend file carries in its DNA1
 * block. Parsed with every count and offset checked against the bytes that
 * are really there, so a crafted block fails fast instead of looping or
 * reading out of bounds.
 */

/** Throws the reader's error for a malformed file; never returns. */
export type Fail = (reason: string) => never;

/** One struct member as the SDNA stores it: indices into the type and name tables. */
interface Member {
  readonly type: number;
  readonly name: number;
}

/** A parsed SDNA: names, types, type sizes and structs. */
export interface Sdna {
  readonly names: readonly string[];
  readonly types: readonly string[];
  readonly sizes: readonly number[];
  /** Each struct's members, by the index of the struct's type. */
  readonly structs: ReadonlyMap<number, readonly Member[]>;
  readonly pointerSize: 4 | 8;
}

/** Where a member lives in its struct, in bytes. */
export interface FieldPlace {
  readonly offset: number;
  readonly size: number;
}

const latin1 = new TextDecoder("latin1");

/**
 * Parse a DNA1 block's bytes.
 *
 * Layout: `SDNA`, `NAME` count strings, pad to 4, `TYPE` count strings, pad
 * to 4, `TLEN` one int16 per type, pad to 4, `STRC` count structs of
 * (type int16, member count int16, then type/name int16 pairs). Padding is
 * relative to the block's start, as Blender reads it into its own buffer.
 */
export function parseSdna(bytes: Uint8Array, little: boolean, pointerSize: 4 | 8, fail: Fail): Sdna {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let at = 0;
  const need = (count: number, what: string) => {
    if (count < 0 || at + count > end) fail(`its DNA block ends inside ${what}`);
  };
  const tag = (name: string) => {
    need(4, `the ${name} tag`);
    if (latin1.decode(bytes.subarray(at, at + 4)) !== name) fail(`its DNA block has no ${name} section`);
    at += 4;
  };
  const count = (what: string, unit: number): number => {
    need(4, `the ${what} count`);
    const value = view.getInt32(at, little);
    at += 4;
    if (value < 0 || value * unit > end - at) {
      fail(`its DNA block claims ${value} ${what}, more than its ${end} bytes can hold`);
    }
    return value;
  };
  const strings = (what: string): string[] => {
    const out: string[] = new Array(count(what, 1));
    for (let i = 0; i < out.length; i++) {
      const stop = bytes.indexOf(0, at);
      if (stop < 0) fail(`its DNA ${what} run past the end of the block`);
      out[i] = latin1.decode(bytes.subarray(at, stop));
      at = stop + 1;
    }
    return out;
  };
  const align = () => {
    at = (at + 3) & ~3;
  };

  tag("SDNA");
  tag("NAME");
  const names = strings("names");
  align();
  tag("TYPE");
  const types = strings("types");
  align();
  tag("TLEN");
  need(types.length * 2, "the type sizes");
  const sizes = types.map((_, i) => view.getInt16(at + i * 2, little));
  at += types.length * 2;
  align();
  tag("STRC");
  const structCount = count("structs", 4);
  const structs = new Map<number, Member[]>();
  for (let s = 0; s < structCount; s++) {
    need(4, "a struct header");
    const type = view.getInt16(at, little);
    const memberCount = view.getInt16(at + 2, little);
    at += 4;
    if (type < 0 || type >= types.length) fail(`its DNA struct ${s} has type ${type} of ${types.length}`);
    if (memberCount < 0) fail(`its DNA struct ${s} has ${memberCount} members`);
    need(memberCount * 4, `struct ${s}'s members`);
    const members: Member[] = new Array(memberCount);
    for (let m = 0; m < memberCount; m++) {
      const memberType = view.getInt16(at, little);
      const memberName = view.getInt16(at + 2, little);
      at += 4;
      if (memberType < 0 || memberType >= types.length || memberName < 0 || memberName >= names.length) {
        fail(`its DNA struct ${s} member ${m} points outside the type or name table`);
      }
      members[m] = { type: memberType, name: memberName };
    }
    if (!structs.has(type)) structs.set(type, members);
  }
  return { names, types, sizes, structs, pointerSize };
}

/**
 * Find a member of a struct by name (without `*` or `[N]`), from the file's
 * own SDNA: its offset is the sum of the sizes before it (Blender's DNA has
 * no implicit padding). `null` when the struct or member is not there.
 */
export function findField(sdna: Sdna, structName: string, memberName: string): FieldPlace | null {
  const typeIndex = sdna.types.indexOf(structName);
  const members = typeIndex < 0 ? undefined : sdna.structs.get(typeIndex);
  if (members === undefined) return null;
  let offset = 0;
  for (const member of members) {
    const name = sdna.names[member.name]!;
    const size = memberSize(sdna, member.type, name);
    if (bareName(name) === memberName) return { offset, size };
    offset += size;
  }
  return null;
}

function memberSize(sdna: Sdna, type: number, name: string): number {
  let count = 1;
  for (const match of name.matchAll(/\[(\d+)\]/g)) count *= Number(match[1]);
  const isPointer = name.startsWith("*") || name.startsWith("(*");
  return (isPointer ? sdna.pointerSize : Math.max(0, sdna.sizes[type]!)) * count;
}

function bareName(name: string): string {
  return name.replace(/^[(*]+/, "").replace(/[)[].*$/, "");
}

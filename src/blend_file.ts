/**
 * The .blend reader lives in `./blend/`; this keeps the old import path
 * working for the modules that use it.
 */

export {
  type BlendFileInfo,
  DEFAULT_MAX_BYTES,
  readBlendFile,
  type ReadBlendFileOptions,
  readBlendFileSync,
} from "./blend/read.ts";
export type { BlendId } from "./blend/ids.ts";

/** The options of `JobManager.render`, apart from the render itself (its checks read them). */

/** Options of {@linkcode Render}'s video step. */
export interface RenderVideoOptions {
  /**
   * The video file; its extension picks the container (`.mp4`, `.mkv`, `.mov`, `.avi`, `.webm`).
   *
   * @default {`video.mp4` in the output folder}
   */
  path?: string;
  /**
   * Frames per second.
   *
   * @default {the scene's frame rate}
   */
  fps?: number;
  /**
   * The FFmpeg codec, as Blender names it: `H264`, `MPEG4`, `FFV1`, `PNG`, `QTRLE`, `AV1`, `WEBM`, ...
   * (H.264 needs an even width and height).
   *
   * @default {"H264"}
   */
  codec?: string;
}

/** Options of `JobManager.render`. */
export interface RenderOptions {
  /** The .blend file to render (each chunk works on a private copy; the file is never changed). */
  blendFile: string;
  /**
   * The frames: `"1-250"`, `"1-10,20,30-40x2"` (`A-BxS` is every S-th frame from A to B) or `[1, 5, 9]`.
   * Sorted and counted once each; see {@linkcode parseFrames}.
   */
  frames: string | readonly number[];
  /**
   * How many frames each chunk job renders (one Blender start per chunk). A render makes at most 10,000 chunk jobs:
   * a larger frame list needs larger chunks (the error says how large).
   *
   * @default {10}
   */
  chunk?: number;
  /**
   * The folder the frames are written to, as `frame_####` plus the extension of the scene's image format (a
   * video format in the scene is replaced by PNG). It is made when missing; files of the same names are
   * replaced.
   *
   * @default {a folder in the manager's work root, removed by `render.remove()` or the manager's `close()`}
   */
  outputDir?: string;
  /** The render engine: `"CYCLES"`, `"EEVEE"`, `"WORKBENCH"` (each Blender's own identifier is used) or an engine's identifier. @default {the scene's} */
  engine?: string;
  /** Samples per pixel, for Cycles (`cycles.samples`) and EEVEE (`eevee.taa_render_samples`). @default {the scene's} */
  samples?: number;
  /** `[width, height]` in pixels, rendered at 100 %. @default {the scene's} */
  resolution?: readonly [number, number];
  /** The camera object to render with. @default {the scene's camera} */
  camera?: string;
  /** The scene to render. @default {the file's active scene} */
  scene?: string;
  /**
   * After the frames, make a video of them (in frame order) with Blender's sequencer, as one more job: `true`
   * for the defaults. Needs a Blender built with FFmpeg (`bpy.app.ffmpeg.supported`); without it the video job
   * fails with a clear error and the render rejects with a {@linkcode RenderFailedError} of stage `"video"`.
   *
   * @default {false}
   */
  video?: boolean | RenderVideoOptions;
  /**
   * The render's name; its jobs are named after it (`<name>-frames-1-10`, `<name>-video`).
   *
   * @default {`render-<n>`}
   */
  name?: string;
  /** Each chunk attempt's timeout in milliseconds; 0 means none. @default {the manager's `timeout`} */
  timeout?: number;
  /** The priority of its jobs among queued jobs (see `AddJobOptions.priority`). @default {0} */
  priority?: number;
  /** Kills the render when aborted. */
  signal?: AbortSignal;
}

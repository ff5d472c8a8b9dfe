/**
 * Job priorities in the service: the `priority` field of `POST /jobs`, checked as the manager checks it, and
 * `POST /jobs/:name/priority { "priority": N }`, which changes a queued job's priority.
 */

import { InvalidJobError, type JobManager } from "../../mod.ts";
import { checkPriority } from "../api/checked_job.ts";
import { didYouMean } from "../_suggest.ts";
import { HttpError } from "./_http.ts";
import { redact } from "./_jobs.ts";

/** The fields of `POST /jobs/:name/priority`. */
export const PRIORITY_FIELDS: readonly string[] = ["priority"];

/**
 * A priority from a request body, checked before anything starts (an integer from -999999999 to 999999999).
 *
 * @param value The body's `priority`.
 * @param error The JSON error's `error` when it is bad (`"bad job"`, `"bad priority"`).
 * @param what How the detail begins (`"Cannot add job"`).
 * @returns The priority.
 * @throws {HttpError} 400 when it is not such an integer.
 */
export function requestPriority(value: unknown, error: string, what: string): number {
  try {
    return checkPriority(value, what);
  } catch (caught) {
    if (caught instanceof InvalidJobError) throw new HttpError(400, error, caught.message);
    throw caught;
  }
}

/**
 * Check a `POST /jobs/:name/priority` body and set the queued job's priority.
 *
 * @param manager The service's manager.
 * @param name The job's name.
 * @param body The request's JSON body.
 * @returns The job's new priority.
 * @throws {HttpError} 400 for a bad body, 404 when there is no such job, 409 when the job is not queued (over NATS:
 * also when a worker claimed it before this host heard of it).
 */
export async function changePriority(manager: JobManager, name: string, body: unknown): Promise<number> {
  const bad = (detail: string) => new HttpError(400, "bad priority", detail);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw bad('The body must be a JSON object: { "priority": 1 }');
  }
  for (const key of Object.keys(body)) {
    if (!PRIORITY_FIELDS.includes(key)) {
      throw bad(`Unknown field '${key}'${didYouMean(key, PRIORITY_FIELDS)} (fields: ${PRIORITY_FIELDS.join(", ")})`);
    }
  }
  const { priority } = body as Record<string, unknown>;
  if (priority === undefined) throw bad(`'priority' is missing: send { "priority": 1 }`);
  const checked = requestPriority(priority, "bad priority", "Cannot set the priority");
  const gone = () => new HttpError(404, "no such job", `There is no job '${name}'`);
  const notQueued = (state: string) =>
    new HttpError(409, "job not queued", `Job '${name}' is ${state}: only a queued job's priority can change`);
  const job = manager.getJob(name);
  if (job === undefined) throw gone();
  if (job.state !== "QUEUED") throw notQueued(job.state);
  try {
    await manager.setPriority(name, checked);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    const now = manager.getJob(name);
    if (now === undefined) throw gone();
    // It started meanwhile (over NATS, a worker may have claimed it before this host heard).
    if (now.state !== "QUEUED") throw notQueued(now.state);
    throw new HttpError(409, "cannot set priority", redact(error.message));
  }
  return checked;
}

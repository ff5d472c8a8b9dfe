/**
 * Errors that reach the user through a promise (`job.result()`) were made deep inside the supervisor's actors;
 * their stack is re-taken where the user awaits, so it ends at the user's own `await job.result()`.
 */

/**
 * Await `promise`; if it rejects with an `Error`, re-take that error's stack at whoever awaits this call
 * (bgproc's frames, where the error was made, are left out) and throw it. Hand its promise out directly (not
 * from an `async` method), so the caller's frame is the next one up.
 *
 * @param promise What a public method hands out (e.g. a job's result).
 * @returns What `promise` resolves to.
 */
export async function awaitAtCaller<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof Error) Error.captureStackTrace(error, awaitAtCaller);
    throw error;
  }
}

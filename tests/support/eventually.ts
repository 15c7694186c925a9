// The one way tests wait: poll a condition until it holds.

/**
 * Polls `probe` until it returns a truthy value; fails after timeoutMs with the last value seen.
 * The timeout only bounds a failure: it is generous so that a loaded machine is slower, not red.
 */
export async function eventually<T>(probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | null | undefined | false;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last as T;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
}

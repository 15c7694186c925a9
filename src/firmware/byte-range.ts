// The Range header of an image download [RFC 9110 14.2]: one byte range, or the whole image.

/** Inclusive byte positions. */
export interface ByteRange { start: number; end: number }

/**
 * `null`: no usable Range (absent, not `bytes=`, malformed, or several ranges): send the whole
 * image with 200, as RFC 9110 allows. `unsatisfiable`: a well-formed range that lies past the
 * end: answer 416. Otherwise the range, clipped to the image.
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (typeof header !== 'string') return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    // The last N bytes.
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null; // invalid: ignored [14.1.1]
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

// What the HTTP log says about a request. Fastify's own `req` serializer logs the URL as sent,
// query string included, so a credential given as `?token=…` (a script, a copied dashboard link)
// would be written to the log; here such parameters keep their name and lose their value.
import type { FastifyRequest } from 'fastify';

/** Query parameters whose value is a secret, compared case-insensitively after percent-decoding. */
const SECRET_PARAMS = new Set(['token', 'access_token', 'auth', 'authorization', 'api_key', 'apikey', 'key', 'secret', 'password']);

/** The URL with the values of secret query parameters replaced by `[redacted]`. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url.slice(q + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    return SECRET_PARAMS.has(decode(name).toLowerCase()) ? `${name}=[redacted]` : pair;
  });
  return `${url.slice(0, q)}?${query.join('&')}`;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** Fastify's `req` serializer (same fields), with the URL redacted. */
export const logSerializers = {
  req(req: FastifyRequest) {
    return {
      method: req.method,
      url: redactUrl(req.url),
      host: req.host,
      remoteAddress: req.ip,
      remotePort: req.socket ? req.socket.remotePort : undefined,
    };
  },
};

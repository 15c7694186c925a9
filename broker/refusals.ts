// Why the broker turned a client or a packet away, counted for metrics: a certificate that
// stopped working across a fleet, or a device probing topics, shows as a rising count before
// anyone reads the log lines that go with each refusal.

export const REFUSAL_REASONS = [
  /** TLS handshake failed: no certificate, another CA, an expired one, a protocol error. */
  'tls-handshake',
  /** CONNECT without a usable certificate identity (bad subject, or the plaintext listener). */
  'no-identity',
  /** CONNECT whose client id differs from the certificate CN (for a claim: not `{claimId}:{deviceId}`, or not a clean session). */
  'client-id',
  /** CONNECT with a revoked certificate. */
  'revoked',
  /** PUBLISH outside the client's own topics (the client is disconnected). */
  'publish',
  /** A last will on a topic the client may not publish to. */
  'will',
  /** SUBSCRIBE to a filter the client may not read (SUBACK 0x80). */
  'subscribe',
  /** A packet over the size limit (the client is disconnected). */
  'packet-too-large',
  /** No CONNECT within the connect timeout of the connection's accept (closed). */
  'connect-timeout',
  /** A connection over the broker's connection limit (connection-limit.ts): closed at accept. */
  'too-many-connections',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export class Refusals {
  private readonly counts = new Map<RefusalReason, number>(REFUSAL_REASONS.map((r) => [r, 0]));

  count = (reason: RefusalReason): void => {
    this.counts.set(reason, this.counts.get(reason)! + 1);
  };

  snapshot(): ReadonlyMap<RefusalReason, number> {
    return new Map(this.counts);
  }
}

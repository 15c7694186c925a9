// Operator certificates (monitoring clients on the MQTT status topics).
import { Type } from 'typebox';
import { DateTime, DeviceId } from './common.js';

export const OperatorCreateBody = Type.Object({
  // The name is the certificate CN, so it follows the device id rule.
  name: DeviceId,
  role: Type.Literal('monitor'),
}, { additionalProperties: false });

export const OperatorView = Type.Object({
  name: Type.String(), role: Type.String(), fingerprint: Type.String({ description: 'SHA-256 of the certificate' }), serial: Type.String(),
  notAfter: DateTime, createdAt: DateTime,
});

export const OperatorIssued = Type.Object({
  operator: OperatorView,
  bundle: Type.Object({
    name: Type.String(), role: Type.String(), brokerUrl: Type.String(), topics: Type.Array(Type.String(), { description: 'the filters the certificate may subscribe to' }),
    certPem: Type.String(), keyPem: Type.String({ description: 'the private key; mqota keeps no copy' }), caPem: Type.String({ description: 'the server CA, to verify the broker' }),
    fingerprint: Type.String(), notAfter: DateTime,
  }),
});

// The "bare Aedes + Node TLS" anchor of `npm run bench -- --compare` (issue #13): the stack mqota's
// embedded broker is built on, with nothing of mqota on it. Aedes with its defaults behind a Node
// mutual-TLS server with mqota's certificates and TLS options (device CA, no session tickets), no
// authentication hook, no ACL, no database. What mqota costs beyond this is mqota's own; what this
// costs beyond Mosquitto is the stack's (Node's TLS and Aedes).
//
//   node bench/bare-aedes.mjs --port P --cert server.crt --key server.key --ca device-ca.crt
//
// Plain JavaScript, so it runs without a TypeScript loader, as the compiled mqota does. The bench
// starts it with mqota's node flags and allocator, so the difference is the code, not the runtime.
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';

const { values } = parseArgs({ options: { port: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' } } });
if (!values.port || !values.cert || !values.key || !values.ca) {
  console.error('usage: node bench/bare-aedes.mjs --port P --cert server.crt --key server.key --ca device-ca.crt');
  process.exit(2);
}

const broker = await Aedes.createBroker();
const server = tls.createServer({
  cert: readFileSync(values.cert), key: readFileSync(values.key), ca: readFileSync(values.ca),
  requestCert: true, rejectUnauthorized: true, secureOptions: constants.SSL_OP_NO_TICKET,
}, broker.handle);
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => { server.close(); broker.close(() => process.exit(0)); });

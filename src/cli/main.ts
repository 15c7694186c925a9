// `mqota`: runs the command line (program.ts) and turns a failure into one line that says why,
// naming the server tried and where it came from when the connection failed.
import { ApiError } from './api-client.js';
import { explainConnectionFailure } from './connection.js';
import { currentConnection, program } from './program.js';

program.parseAsync().catch((err) => {
  const connection = currentConnection();
  const message = (connection && explainConnectionFailure(err, connection))
    ?? (err instanceof ApiError ? `${err.message} (HTTP ${err.statusCode})` : (err as Error).message);
  process.stderr.write(`mqota: ${message}\n`);
  process.exit(1);
});

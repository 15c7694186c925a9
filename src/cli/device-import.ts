// `mqota device import devices.csv`: a bundle for every row, or for none. Every row is checked
// here first (a bad one is named by its line), then the server provisions all devices in one
// request (all or nothing on its side too), then the bundles are written into a staging folder
// and moved into place; if writing fails, what was written is removed and the certificates just
// issued are revoked, so no usable half of an import is left behind.
import { randomBytes } from 'node:crypto';
import { access, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { checkCsr, CsrError } from '../../certs/csr.js';
import { DEVICE_ID_PATTERN } from '../../certs/identity.js';
import { MAX_IMPORT_DEVICES } from '../fleet/device-provisioning.js';
import type { ApiClient } from './api-client.js';
import { writeDeviceBundle, type DeviceBundleFiles } from './bundle.js';

const TYPE_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const TAG_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
const COLUMNS = ['id', 'type', 'tags', 'csr'];

export class ImportError extends Error {}

export interface ImportRow { line: number; id: string; type?: string; tags?: string[]; csrPem?: string }

/**
 * Reads and checks devices.csv: a header naming `id` and any of `type`, `tags` (separated by `;`
 * or spaces) and `csr` (a PEM CSR file, relative to the CSV file), then one device per line.
 * Throws ImportError naming the file and line of the first problem.
 */
export async function readImportFile(file: string, onRow?: (done: number, total: number) => void): Promise<ImportRow[]> {
  const text = await readFile(file, 'utf8').catch((err: Error) => { throw new ImportError(`cannot read ${file}: ${err.message}`); });
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parse(text, { columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()), skip_empty_lines: true, trim: true, info: true, bom: true });
  } catch (err) {
    throw new ImportError(`${file}: ${(err as Error).message}`);
  }
  if (!records.length) throw new ImportError(`${file}: no devices (expected a header line "id,type,tags,csr" and one device per line)`);
  const header = Object.keys(records[0]!.record);
  const unknown = header.filter((h) => !COLUMNS.includes(h));
  if (!header.includes('id') || unknown.length) {
    throw new ImportError(`${file}:1: the header must name the column id and may name ${COLUMNS.slice(1).join(', ')}${unknown.length ? `; unknown: ${unknown.join(', ')}` : ''}`);
  }
  if (records.length > MAX_IMPORT_DEVICES) throw new ImportError(`${file}: ${records.length} devices; at most ${MAX_IMPORT_DEVICES} per import (split the file)`);

  const rows: ImportRow[] = [];
  const lineOf = new Map<string, number>();
  for (const [i, { record, info }] of records.entries()) {
    const line = info.lines;
    const at = `${file}:${line}`;
    const id = record.id ?? '';
    if (!DEVICE_ID_PATTERN.test(id)) throw new ImportError(`${at}: invalid device id ${JSON.stringify(id)} (1-64 characters from [A-Za-z0-9_.-], not starting with '.')`);
    if (lineOf.has(id)) throw new ImportError(`${at}: device ${id} already on line ${lineOf.get(id)}`);
    lineOf.set(id, line);
    const type = record.type || undefined;
    if (type !== undefined && !TYPE_PATTERN.test(type)) throw new ImportError(`${at}: invalid type ${JSON.stringify(type)} (1-64 characters from [A-Za-z0-9_.-])`);
    const tags = record.tags ? [...new Set(record.tags.split(/[;\s]+/).filter(Boolean))] : undefined;
    for (const tag of tags ?? []) if (!TAG_PATTERN.test(tag)) throw new ImportError(`${at}: invalid tag ${JSON.stringify(tag)} (1-64 characters from [A-Za-z0-9_.:-])`);
    let csrPem: string | undefined;
    if (record.csr) {
      const csrFile = path.resolve(path.dirname(file), record.csr);
      csrPem = await readFile(csrFile, 'utf8').catch((err: Error) => { throw new ImportError(`${at}: cannot read the CSR ${csrFile}: ${err.message}`); });
      try {
        await checkCsr(csrPem, id);
      } catch (err) {
        if (err instanceof CsrError) throw new ImportError(`${at}: ${csrFile}: ${err.message}`);
        throw err;
      }
    }
    rows.push({ line, id, type, tags, csrPem });
    onRow?.(i + 1, records.length);
  }
  return rows;
}

export interface ImportResult { outDir: string; bundles: { deviceId: string; dir: string; ownKey: boolean }[] }

/**
 * Provisions `rows` and writes `<outDir>/<id>/` for each. Nothing is sent when a bundle folder
 * already exists. `onBundle` reports bundles written.
 */
export async function importDevices(api: ApiClient, rows: ImportRow[], outDir: string, onBundle?: (done: number, total: number) => void): Promise<ImportResult> {
  const out = path.resolve(outDir);
  for (const r of rows) {
    const dir = path.join(out, r.id);
    if (await access(dir).then(() => true, () => false)) throw new ImportError(`line ${r.line}: ${dir} already exists; move it away or choose --out`);
  }
  const res = await api.call<{ devices: { bundle: DeviceBundleFiles & { fingerprint: string } }[] }>('POST', '/api/devices/import', {
    devices: rows.map((r) => ({ id: r.id, type: r.type, tags: r.tags, csrPem: r.csrPem })),
  }).catch((err: Error) => {
    // The server names the row as devices[i]; say which line of the file that is.
    const m = /^devices\[(\d+)\]/.exec(err.message);
    const row = m ? rows[Number(m[1])] : undefined;
    if (row) err.message = `line ${row.line}: ${err.message}`;
    throw err;
  });

  const staging = path.join(out, `.mqota-import-${randomBytes(4).toString('hex')}`);
  const moved: string[] = [];
  try {
    for (const [i, { bundle }] of res.devices.entries()) {
      await writeDeviceBundle(path.join(staging, bundle.deviceId), bundle);
      onBundle?.(i + 1, res.devices.length);
    }
    for (const { bundle } of res.devices) {
      const dir = path.join(out, bundle.deviceId);
      await rename(path.join(staging, bundle.deviceId), dir);
      moved.push(dir);
    }
    await rm(staging, { recursive: true, force: true });
  } catch (err) {
    await Promise.all([staging, ...moved].map((d) => rm(d, { recursive: true, force: true })));
    // Their keys (made by the server) are gone with the files: nobody may use those certificates.
    const unrevoked: string[] = [];
    for (const { bundle } of res.devices) {
      await api.call('POST', `/api/devices/${encodeURIComponent(bundle.deviceId)}/revoke`, { reason: 'import undone: bundle not written' })
        .catch(() => unrevoked.push(bundle.deviceId));
    }
    throw new ImportError(`writing the bundles failed (${(err as Error).message}); nothing was kept and the ${res.devices.length} new certificates were revoked` +
      `${unrevoked.length ? ` except those of ${unrevoked.join(', ')} (revoke them with \`mqota device revoke\`)` : ''}; the devices stay registered: \`mqota device certificate <id>\` issues a new bundle`);
  }
  return { outDir: out, bundles: res.devices.map(({ bundle }) => ({ deviceId: bundle.deviceId, dir: path.join(out, bundle.deviceId), ownKey: bundle.keyPem === null })) };
}

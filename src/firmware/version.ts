// Version rules for firmware uploads. Versions are Semantic Versioning 2.0
// (https://semver.org); ESP-IDF itself does not require that, so an image's
// own version string is trusted only when it is semver.
import semver from 'semver';
import type { EspAppImage } from './esp-image.js';

const TYPE_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The canonical semver string for `input` (one leading 'v' accepted, build
 * metadata kept: 'v1.2.0+abc' → '1.2.0+abc'), or null if it is not semver 2.0.
 */
export function normaliseVersion(input: string): string | null {
  if (typeof input !== 'string') return null;
  const bare = input.startsWith('v') ? input.slice(1) : input;
  const parsed = semver.parse(bare, { loose: false });
  if (parsed === null) return null;
  const canonical = parsed.build.length > 0 ? `${parsed.version}+${parsed.build.join('.')}` : parsed.version;
  // semver.parse trims whitespace and accepts a second 'v'; a strict 2.0
  // string is already canonical, so anything it rewrote was not one.
  return canonical === bare ? canonical : null;
}

// A fleet runs a handful of versions, and a rollout's tick compares each member's with the
// rollout's (thousands a second at 20,000 devices): results are kept, parsing is not repeated.
const compared = new Map<string, -1 | 0 | 1>();
const MAX_COMPARED = 4096;

/**
 * Orders two semver strings by precedence: pre-release < release, build
 * metadata ignored. Both must be valid (see normaliseVersion); an invalid one throws.
 */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const key = `${a} ${b}`; // no space in a version
  let order = compared.get(key);
  if (order === undefined) {
    order = semver.compare(a, b, { loose: false });
    if (compared.size >= MAX_COMPARED) compared.clear();
    compared.set(key, order);
  }
  return order;
}

export type FirmwareIdentityError =
  | 'version-mismatch'
  | 'version-required'
  | 'invalid-version'
  | 'invalid-type'
  | 'type-required';

export type FirmwareIdentity =
  | { ok: true; type: string; version: string; buildId: string | null }
  | { ok: false; code: FirmwareIdentityError; message: string };

/**
 * Decides the catalog type and version of an upload from the form fields and
 * the identified image, either of which may be missing.
 *
 * - type: the form's, else the image's project name; must match TYPE_PATTERN.
 * - version: when the image carries a semver version it is authoritative; a
 *   form version must name the same one (after normalising, build metadata
 *   included) and may be left out. When the image's version is not semver
 *   (Arduino builds report e.g. 'heads/idf-release/v4.4-0-gd4572'), the form
 *   must give one and the image's string is kept as buildId.
 */
export function resolveFirmwareIdentity(
  form: { type?: string; version?: string },
  image: EspAppImage | null,
): FirmwareIdentity {
  const formType = nonEmpty(form.type);
  const formVersion = nonEmpty(form.version);

  const type = formType ?? nonEmpty(image?.projectName);
  if (type === undefined) {
    return fail(
      'type-required',
      image
        ? 'the image has no project name; give a firmware type'
        : 'the file is not a recognised ESP-IDF image; give a firmware type',
    );
  }
  if (!TYPE_PATTERN.test(type)) {
    const source = formType === undefined ? "the image's project name" : 'firmware type';
    return fail('invalid-type', `${source} "${type}" must be 1-64 characters of A-Z a-z 0-9 _ . -`);
  }

  let version: string | undefined;
  if (formVersion !== undefined) {
    const normalised = normaliseVersion(formVersion);
    if (normalised === null) {
      return fail('invalid-version', `version "${formVersion}" is not a semantic version (e.g. 1.4.0 or 1.4.0-rc.1)`);
    }
    version = normalised;
  }

  const imageVersion = nonEmpty(image?.version);
  const imageSemver = imageVersion === undefined ? null : normaliseVersion(imageVersion);

  if (imageSemver !== null) {
    if (version !== undefined && version !== imageSemver) {
      return fail(
        'version-mismatch',
        `version "${formVersion}" does not match the version built into the image, "${imageVersion}"`,
      );
    }
    return { ok: true, type, version: imageSemver, buildId: null };
  }

  if (version === undefined) {
    return fail(
      'version-required',
      imageVersion === undefined
        ? 'give a version: the file does not carry one'
        : `give a version: the image's version "${imageVersion}" is not a semantic version`,
    );
  }
  return { ok: true, type, version, buildId: imageVersion ?? null };
}

function nonEmpty(value: string | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function fail(code: FirmwareIdentityError, message: string): FirmwareIdentity {
  return { ok: false, code, message };
}

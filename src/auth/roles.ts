// Who may do what through the operator API. Roles are ordered: each one can do everything the
// ones below it can.
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** The authenticated caller of an API request: the token's name and role. */
export interface Principal {
  name: string;
  role: Role;
}

/**
 * - `viewer`: reads everything (firmware, devices, rollouts, audit log);
 * - `operator`: also uploads firmware, runs rollouts, provisions and tags devices;
 * - `admin`: also manages tokens and operator certificates.
 */
export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

/** The role a route needs unless it says otherwise (`config: { role }`): reads are for viewers, changes for operators. */
export function defaultRole(method: string): Role {
  return method === 'GET' || method === 'HEAD' ? 'viewer' : 'operator';
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

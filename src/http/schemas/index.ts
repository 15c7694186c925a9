// Request and response shapes of the HTTPS API, one file per resource: one source for
// validation, handler types and the OpenAPI document. Routes import them from here.
export * from './common.js';
export * from './audit.js';
export * from './certificates.js';
export * from './devices.js';
export * from './events.js';
export * from './firmware.js';
export * from './health.js';
export * from './operators.js';
export * from './rollouts.js';
export * from './tokens.js';
export * from './provisioning.js';
export * from './webhooks.js';
export * from './keys.js';

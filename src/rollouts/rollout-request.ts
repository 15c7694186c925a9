// What an operator asks for when starting a rollout, and the checks it must pass before anything
// is stored. Pure.
import semver from 'semver';
import { validWindow, type RolloutPolicy } from './policy.js';
import { SINGLE_WAVE, type WavePlan } from './waves.js';

export interface RolloutRequest {
  firmwareId: string;
  name?: string;
  deviceIds?: string[];
  tags?: string[];
  versionRange?: string;
  channel?: string;
  /** Cumulative wave sizes (percentages, or counts with waveUnit 'count'). */
  waves?: number[];
  waveUnit?: 'percent' | 'count';
  startAt?: Date;
  policy?: Partial<RolloutPolicy>;
  createdBy?: string;
}

export class RolloutError extends Error {
  constructor(readonly statusCode: 400 | 404 | 409, message: string, readonly details?: unknown) { super(message); }
}

/** The wave plan of a valid request; a RolloutError (400) naming what is wrong otherwise. */
export function validateRequest(req: RolloutRequest, policy: RolloutPolicy): WavePlan {
  if (req.versionRange && !semver.validRange(req.versionRange)) throw new RolloutError(400, `versionRange '${req.versionRange}' is not a semver range`);
  if (policy.allowDowngrade && !policy.downgradeReason?.trim()) throw new RolloutError(400, 'allowDowngrade needs a downgradeReason');
  if (policy.maintenanceWindow && !validWindow(policy.maintenanceWindow)) throw new RolloutError(400, 'maintenanceWindow needs start and end as distinct HH:MM (UTC)');
  if (!req.waves) return SINGLE_WAVE;
  const unit = req.waveUnit ?? 'percent';
  const sizes = req.waves;
  if (!sizes.every((s, i) => s > 0 && (i === 0 || s > sizes[i - 1]))) throw new RolloutError(400, 'waves must be positive and strictly ascending (cumulative sizes)');
  if (unit === 'percent' && sizes[sizes.length - 1] !== 100) throw new RolloutError(400, 'percentage waves must end at 100');
  return { unit, sizes };
}

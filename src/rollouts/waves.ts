// Wave membership: deterministic from a hash of rollout id and device id, so it survives restarts
// and can be reproduced. The initial target set is ranked by that hash and cut at the wave sizes
// (exact sizes); a device that joins later falls into the wave its hash percentile lands in.
import { hash } from 'node:crypto';

export interface WavePlan {
  unit: 'percent' | 'count';
  /** Cumulative sizes, ascending; the last one covers everything (100 % or the full count). */
  sizes: number[];
}

export const SINGLE_WAVE: WavePlan = { unit: 'percent', sizes: [100] };

/** A 52-bit hash of (rollout, device) as a number in [0, 1). */
export function waveHash(rolloutId: string, deviceId: string): number {
  // One-shot hash: a rollout's creation hashes every target (createHash's object cost ~2.5× more).
  const digest = hash('sha256', `${rolloutId}\0${deviceId}`, 'buffer');
  return (digest.readUIntBE(0, 6) * 16 + (digest[6] >> 4)) / 2 ** 52;
}

function cumulativeCounts(plan: WavePlan, total: number): number[] {
  return plan.sizes.map((s, i) => i === plan.sizes.length - 1
    ? total
    : Math.min(total, plan.unit === 'percent' ? Math.ceil((s / 100) * total) : s));
}

/** Wave of each initial target: rank by hash, cut at the cumulative sizes. `hashes[i]` is waveHash of deviceIds[i], if already computed. */
export function assignWaves(rolloutId: string, deviceIds: string[], plan: WavePlan, hashes?: readonly number[]): Map<string, number> {
  const ranked = deviceIds.map((id, i) => ({ id, h: hashes?.[i] ?? waveHash(rolloutId, id) })).sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : 1));
  const cuts = cumulativeCounts(plan, ranked.length);
  const waves = new Map<string, number>();
  let wave = 0;
  ranked.forEach(({ id }, rank) => {
    while (wave < cuts.length - 1 && rank >= cuts[wave]) wave++;
    waves.set(id, wave);
  });
  return waves;
}

/** Wave of a device that joins after the start: where its hash percentile falls. */
export function waveForLateJoiner(rolloutId: string, deviceId: string, plan: WavePlan, initialTargets: number): number {
  const fractions = plan.sizes.map((s, i) => i === plan.sizes.length - 1 ? 1
    : plan.unit === 'percent' ? s / 100 : initialTargets > 0 ? s / initialTargets : 1);
  const h = waveHash(rolloutId, deviceId);
  const wave = fractions.findIndex((f) => h < f);
  return wave === -1 ? plan.sizes.length - 1 : wave;
}

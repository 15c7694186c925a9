// A rollout's attempts per state, from the database (finished rollouts, API views).
import type { PrismaClient } from '../generated/prisma/client.js';
import { zeroCounts, type AttemptState } from './attempt-state.js';

export async function countAttempts(prisma: PrismaClient, rolloutId: string): Promise<Record<AttemptState, number>> {
  const groups = await prisma.updateAttempt.groupBy({ by: ['state'], where: { rolloutId }, _count: { _all: true } });
  const counts = zeroCounts();
  for (const g of groups) counts[g.state as AttemptState] = g._count._all;
  return counts;
}

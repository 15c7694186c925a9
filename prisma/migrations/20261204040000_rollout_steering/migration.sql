-- Rollouts that can be steered: the failures an operator acknowledged by resuming, when the
-- current wave started (its deadline for unreachable devices counts from there), and per member
-- the retries an operator granted.
-- AlterTable
ALTER TABLE "Rollout" ADD COLUMN     "acknowledgedFailures" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "acknowledgedFinished" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "waveStartedAt" TIMESTAMP(3);

-- AlterTable
ALTER TABLE "RolloutTarget" ADD COLUMN     "retryUpTo" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "Device" ADD COLUMN     "channel" TEXT NOT NULL DEFAULT 'stable',
ADD COLUMN     "tags" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- AlterTable
ALTER TABLE "Rollout" ADD COLUMN     "channel" TEXT,
ADD COLUMN     "currentWave" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "name" TEXT,
ADD COLUMN     "policy" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "startAt" TIMESTAMP(3),
ADD COLUMN     "targetTags" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "versionRange" TEXT,
ADD COLUMN     "waves" JSONB;

-- AlterTable
ALTER TABLE "UpdateAttempt" ADD COLUMN     "retry" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "RolloutTarget" (
    "rolloutId" TEXT NOT NULL,
    "deviceId" TEXT NOT NULL,
    "wave" INTEGER NOT NULL,
    "joinedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "RolloutTarget_pkey" PRIMARY KEY ("rolloutId","deviceId")
);

-- CreateTable
CREATE TABLE "RolloutEvent" (
    "id" BIGSERIAL NOT NULL,
    "rolloutId" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "wave" INTEGER,
    "reason" TEXT,
    "actor" TEXT,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "RolloutEvent_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiToken" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "tokenHash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "ApiToken_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AuditEntry" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "target" TEXT,
    "statusCode" INTEGER NOT NULL,
    "details" JSONB,

    CONSTRAINT "AuditEntry_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "OperatorCertificate" (
    "name" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "serial" TEXT NOT NULL,
    "notAfter" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "OperatorCertificate_pkey" PRIMARY KEY ("name")
);

-- CreateIndex
CREATE INDEX "RolloutTarget_rolloutId_wave_idx" ON "RolloutTarget"("rolloutId", "wave");

-- CreateIndex
CREATE INDEX "RolloutEvent_rolloutId_at_idx" ON "RolloutEvent"("rolloutId", "at");

-- CreateIndex
CREATE UNIQUE INDEX "ApiToken_name_key" ON "ApiToken"("name");

-- CreateIndex
CREATE UNIQUE INDEX "ApiToken_tokenHash_key" ON "ApiToken"("tokenHash");

-- CreateIndex
CREATE INDEX "AuditEntry_at_idx" ON "AuditEntry"("at");

-- AddForeignKey
ALTER TABLE "RolloutTarget" ADD CONSTRAINT "RolloutTarget_rolloutId_fkey" FOREIGN KEY ("rolloutId") REFERENCES "Rollout"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "RolloutTarget" ADD CONSTRAINT "RolloutTarget_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "RolloutEvent" ADD CONSTRAINT "RolloutEvent_rolloutId_fkey" FOREIGN KEY ("rolloutId") REFERENCES "Rollout"("id") ON DELETE CASCADE ON UPDATE CASCADE;


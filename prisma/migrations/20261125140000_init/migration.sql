-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateTable
CREATE TABLE "Device" (
    "id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "version" TEXT,
    "chip" TEXT,
    "idfVersion" TEXT,
    "secureVersion" INTEGER,
    "slot" TEXT,
    "online" BOOLEAN NOT NULL DEFAULT false,
    "lastSeenAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Device_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Firmware" (
    "id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "channel" TEXT NOT NULL DEFAULT 'stable',
    "notes" TEXT,
    "sha256" TEXT NOT NULL,
    "size" INTEGER NOT NULL,
    "chip" TEXT,
    "projectName" TEXT,
    "imageVersion" TEXT,
    "buildId" TEXT,
    "idfVersion" TEXT,
    "secureVersion" INTEGER,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deletedAt" TIMESTAMP(3),

    CONSTRAINT "Firmware_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Rollout" (
    "id" TEXT NOT NULL,
    "firmwareId" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "deviceIds" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "reason" TEXT,
    "createdBy" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Rollout_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "UpdateAttempt" (
    "id" TEXT NOT NULL,
    "rolloutId" TEXT NOT NULL,
    "deviceId" TEXT NOT NULL,
    "firmwareId" TEXT NOT NULL,
    "fromVersion" TEXT,
    "state" TEXT NOT NULL,
    "progress" INTEGER,
    "error" TEXT,
    "reason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "UpdateAttempt_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AttemptEvent" (
    "id" BIGSERIAL NOT NULL,
    "attemptId" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "progress" INTEGER,
    "error" TEXT,
    "reason" TEXT,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AttemptEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Device_type_version_idx" ON "Device"("type", "version");

-- CreateIndex
CREATE UNIQUE INDEX "Firmware_type_version_key" ON "Firmware"("type", "version");

-- CreateIndex
CREATE INDEX "Rollout_state_idx" ON "Rollout"("state");

-- CreateIndex
CREATE INDEX "UpdateAttempt_deviceId_idx" ON "UpdateAttempt"("deviceId");

-- CreateIndex
CREATE INDEX "UpdateAttempt_rolloutId_state_idx" ON "UpdateAttempt"("rolloutId", "state");

-- CreateIndex
CREATE INDEX "AttemptEvent_attemptId_at_idx" ON "AttemptEvent"("attemptId", "at");

-- AddForeignKey
ALTER TABLE "Rollout" ADD CONSTRAINT "Rollout_firmwareId_fkey" FOREIGN KEY ("firmwareId") REFERENCES "Firmware"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "UpdateAttempt" ADD CONSTRAINT "UpdateAttempt_rolloutId_fkey" FOREIGN KEY ("rolloutId") REFERENCES "Rollout"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "UpdateAttempt" ADD CONSTRAINT "UpdateAttempt_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "UpdateAttempt" ADD CONSTRAINT "UpdateAttempt_firmwareId_fkey" FOREIGN KEY ("firmwareId") REFERENCES "Firmware"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AttemptEvent" ADD CONSTRAINT "AttemptEvent_attemptId_fkey" FOREIGN KEY ("attemptId") REFERENCES "UpdateAttempt"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- CreateTable
CREATE TABLE "ClaimBatch" (
    "id" TEXT NOT NULL,
    "serial" TEXT NOT NULL,
    "type" TEXT,
    "maxDevices" INTEGER NOT NULL,
    "issued" INTEGER NOT NULL DEFAULT 0,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "requireApproval" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdBy" TEXT NOT NULL,

    CONSTRAINT "ClaimBatch_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ProvisionRequest" (
    "deviceId" TEXT NOT NULL,
    "claimId" TEXT NOT NULL,
    "keyId" TEXT NOT NULL,
    "csrPem" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "certSerial" TEXT,
    "certPem" TEXT,
    "reason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "decidedAt" TIMESTAMP(3),
    "decidedBy" TEXT,

    CONSTRAINT "ProvisionRequest_pkey" PRIMARY KEY ("deviceId")
);

-- CreateIndex
CREATE UNIQUE INDEX "ClaimBatch_serial_key" ON "ClaimBatch"("serial");

-- CreateIndex
CREATE INDEX "ProvisionRequest_claimId_state_idx" ON "ProvisionRequest"("claimId", "state");

-- AddForeignKey
ALTER TABLE "ProvisionRequest" ADD CONSTRAINT "ProvisionRequest_claimId_fkey" FOREIGN KEY ("claimId") REFERENCES "ClaimBatch"("id") ON DELETE RESTRICT ON UPDATE CASCADE;


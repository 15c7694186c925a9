-- CreateTable
CREATE TABLE "ClientCertificate" (
    "serial" TEXT NOT NULL,
    "commonName" TEXT NOT NULL,
    "role" TEXT NOT NULL,
    "fingerprint" TEXT,
    "notAfter" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revokedAt" TIMESTAMP(3),
    "revokedBy" TEXT,
    "reason" TEXT,

    CONSTRAINT "ClientCertificate_pkey" PRIMARY KEY ("serial")
);

-- CreateIndex
CREATE INDEX "ClientCertificate_commonName_role_idx" ON "ClientCertificate"("commonName", "role");

-- Operator certificates issued before this migration join the ledger, so they can be revoked.
INSERT INTO "ClientCertificate" ("serial", "commonName", "role", "fingerprint", "notAfter", "createdAt")
SELECT ltrim(lower("serial"), '0'), "name", "role", "fingerprint", "notAfter", "createdAt" FROM "OperatorCertificate"
ON CONFLICT ("serial") DO NOTHING;

-- Secure Boot v2 signing keys, and what each firmware image's signature blocks said at upload.
-- AlterTable
ALTER TABLE "Firmware" ADD COLUMN     "signatures" JSONB;

-- CreateTable
CREATE TABLE "SigningKey" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "algorithm" TEXT NOT NULL,
    "publicKeyPem" TEXT NOT NULL,
    "keyDigest" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "retiredAt" TIMESTAMP(3),
    "retiredBy" TEXT,
    "retireReason" TEXT,

    CONSTRAINT "SigningKey_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "SigningKey_name_key" ON "SigningKey"("name");

-- CreateIndex
CREATE UNIQUE INDEX "SigningKey_keyDigest_key" ON "SigningKey"("keyDigest");

-- CreateTable
CREATE TABLE "VersionSample" (
    "at" TIMESTAMP(3) NOT NULL,
    "type" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "devices" INTEGER NOT NULL,

    CONSTRAINT "VersionSample_pkey" PRIMARY KEY ("type","at","version")
);

-- CreateIndex
CREATE INDEX "VersionSample_at_idx" ON "VersionSample"("at");

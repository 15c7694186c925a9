-- AlterTable
ALTER TABLE "Device" ADD COLUMN     "health" JSONB;

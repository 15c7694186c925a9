-- A device provisioned without a type takes the type of its first announce (then keeps it).
-- AlterTable
ALTER TABLE "Device" ALTER COLUMN "type" DROP NOT NULL;

ALTER TABLE "instance_locks" DROP COLUMN "pid";
ALTER TABLE "instance_locks" DROP COLUMN "host";

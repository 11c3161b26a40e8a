-- Which host and process hold each lock row: a row of this host whose process is gone is taken
-- over at once instead of blocking until its heartbeat goes stale. Old rows read as unknown.
ALTER TABLE "instance_locks" ADD COLUMN "host" VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE "instance_locks" ADD COLUMN "pid" BIGINT;

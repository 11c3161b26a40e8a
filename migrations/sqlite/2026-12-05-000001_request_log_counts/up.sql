-- Exact totals for the logs page without counting millions of rows per view: the number of
-- request_logs rows per hour and per value of the equality filters (request type, success,
-- status code), kept by triggers so every writer (the log sink, retention, an operator's own
-- DELETE) keeps it right. The logs page sums it (a few thousand rows at most) and counts only
-- the partial hours at the edges of a time filter in request_logs itself.
CREATE TABLE "request_log_counts" (
    "hour" TIMESTAMP NOT NULL,
    "request_type" VARCHAR(20) NOT NULL,
    "is_success" BOOLEAN NOT NULL,
    "status_code" INTEGER NOT NULL,
    "log_count" BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY ("hour", "request_type", "is_success", "status_code")
);
INSERT INTO "request_log_counts" ("hour", "request_type", "is_success", "status_code", "log_count")
SELECT strftime('%Y-%m-%d %H:00:00', "timestamp"), "request_type", "is_success", "status_code", COUNT(*)
FROM "request_logs"
GROUP BY 1, 2, 3, 4;
CREATE TRIGGER "request_log_counts_insert" AFTER INSERT ON "request_logs"
BEGIN
    INSERT INTO "request_log_counts" ("hour", "request_type", "is_success", "status_code", "log_count")
    VALUES (strftime('%Y-%m-%d %H:00:00', NEW."timestamp"), NEW."request_type", NEW."is_success", NEW."status_code", 1)
    ON CONFLICT ("hour", "request_type", "is_success", "status_code")
    DO UPDATE SET "log_count" = "log_count" + 1;
END;
CREATE TRIGGER "request_log_counts_delete" AFTER DELETE ON "request_logs"
BEGIN
    UPDATE "request_log_counts" SET "log_count" = "log_count" - 1
    WHERE "hour" = strftime('%Y-%m-%d %H:00:00', OLD."timestamp")
      AND "request_type" = OLD."request_type"
      AND "is_success" = OLD."is_success"
      AND "status_code" = OLD."status_code";
END;

-- Exact totals for the logs page without counting millions of rows per view: the number of
-- request_logs rows per hour and per value of the equality filters (request type, success,
-- status code), kept by statement-level triggers (one grouped upsert per INSERT or DELETE
-- statement, whatever its size) so every writer keeps it right. The logs page sums it and counts
-- only the partial hours at the edges of a time filter in request_logs itself.
CREATE TABLE "request_log_counts" (
    "hour" TIMESTAMP NOT NULL,
    "request_type" VARCHAR(20) NOT NULL,
    "is_success" BOOLEAN NOT NULL,
    "status_code" INTEGER NOT NULL,
    "log_count" BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY ("hour", "request_type", "is_success", "status_code")
);
CREATE FUNCTION request_log_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Sorted, so concurrent writers lock the counter rows in the same order.
    INSERT INTO request_log_counts AS c (hour, request_type, is_success, status_code, log_count)
    SELECT date_trunc('hour', "timestamp"), request_type, is_success, status_code, COUNT(*)
    FROM added GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (hour, request_type, is_success, status_code)
    DO UPDATE SET log_count = c.log_count + EXCLUDED.log_count;
    RETURN NULL;
END $$;
CREATE FUNCTION request_log_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE request_log_counts AS c SET log_count = c.log_count - d.n
    FROM (SELECT date_trunc('hour', "timestamp") AS hour, request_type, is_success, status_code,
                 COUNT(*) AS n
          FROM removed GROUP BY 1, 2, 3, 4) AS d
    WHERE c.hour = d.hour AND c.request_type = d.request_type
      AND c.is_success = d.is_success AND c.status_code = d.status_code;
    RETURN NULL;
END $$;
CREATE FUNCTION request_log_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM request_log_counts;
    RETURN NULL;
END $$;
-- Creating the triggers locks request_logs against writes until this migration commits, so the
-- backfill below and the triggers see every row exactly once.
CREATE TRIGGER request_log_counts_insert AFTER INSERT ON request_logs
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION request_log_counts_add();
CREATE TRIGGER request_log_counts_delete AFTER DELETE ON request_logs
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION request_log_counts_remove();
CREATE TRIGGER request_log_counts_truncate AFTER TRUNCATE ON request_logs
    FOR EACH STATEMENT EXECUTE FUNCTION request_log_counts_clear();
INSERT INTO request_log_counts (hour, request_type, is_success, status_code, log_count)
SELECT date_trunc('hour', "timestamp"), request_type, is_success, status_code, COUNT(*)
FROM request_logs GROUP BY 1, 2, 3, 4;

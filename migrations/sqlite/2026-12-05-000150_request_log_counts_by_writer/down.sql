CREATE TRIGGER "request_log_counts_insert" AFTER INSERT ON "request_logs"
BEGIN
    INSERT INTO "request_log_counts" ("hour", "request_type", "is_success", "status_code", "log_count")
    VALUES (strftime('%Y-%m-%d %H:00:00', NEW."timestamp"), NEW."request_type", NEW."is_success", NEW."status_code", 1)
    ON CONFLICT ("hour", "request_type", "is_success", "status_code")
    DO UPDATE SET "log_count" = "log_count" + 1;
END;

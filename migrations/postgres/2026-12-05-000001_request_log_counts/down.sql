DROP TRIGGER request_log_counts_truncate ON request_logs;
DROP TRIGGER request_log_counts_delete ON request_logs;
DROP TRIGGER request_log_counts_insert ON request_logs;
DROP FUNCTION request_log_counts_clear();
DROP FUNCTION request_log_counts_remove();
DROP FUNCTION request_log_counts_add();
DROP TABLE "request_log_counts";

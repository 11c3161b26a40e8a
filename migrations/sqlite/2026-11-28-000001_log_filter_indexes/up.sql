-- The logs page filters by equality and lists newest first. With only single-column indexes,
-- SQLite answered `status_code = ? ORDER BY timestamp DESC LIMIT 50` by scanning the whole table
-- and sorting (~4 s on 10 M rows, bench/logs_page.sh); an index on (column, timestamp) walks the
-- newest matches directly. The (key_hash, ...) and (request_type, ...) ones replace the
-- single-column indexes they extend.
--
-- Every index is paid for on each logged request. The name and model filters are substring
-- searches (LIKE '%x%'), which no B-tree index serves, and nothing looks rows up by group id, so
-- those five indexes only slowed the log writer down.
DROP INDEX idx_request_logs_key_hash;
DROP INDEX idx_request_logs_request_type;
DROP INDEX idx_request_logs_group_id;
DROP INDEX idx_request_logs_group_name;
DROP INDEX idx_request_logs_parent_group_id;
DROP INDEX idx_request_logs_parent_group_name;
DROP INDEX idx_request_logs_model;
CREATE INDEX idx_request_logs_key_hash_time ON "request_logs" ("key_hash", "timestamp");
CREATE INDEX idx_request_logs_type_time ON "request_logs" ("request_type", "timestamp");
CREATE INDEX idx_request_logs_success_time ON "request_logs" ("is_success", "timestamp");
CREATE INDEX idx_request_logs_status_time ON "request_logs" ("status_code", "timestamp");

DROP INDEX idx_request_logs_status_time;
DROP INDEX idx_request_logs_success_time;
DROP INDEX idx_request_logs_type_time;
DROP INDEX idx_request_logs_key_hash_time;
CREATE INDEX idx_request_logs_key_hash ON "request_logs" ("key_hash");
CREATE INDEX idx_request_logs_request_type ON "request_logs" ("request_type");

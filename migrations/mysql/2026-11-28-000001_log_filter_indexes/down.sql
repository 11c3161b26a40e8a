DROP INDEX idx_request_logs_status_time ON `request_logs`;
DROP INDEX idx_request_logs_success_time ON `request_logs`;
DROP INDEX idx_request_logs_type_time ON `request_logs`;
DROP INDEX idx_request_logs_key_hash_time ON `request_logs`;
CREATE INDEX idx_request_logs_key_hash ON `request_logs` (`key_hash`);
CREATE INDEX idx_request_logs_request_type ON `request_logs` (`request_type`);

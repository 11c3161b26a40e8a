-- Filtered log pages list newest first, and every index costs each logged request: see the
-- SQLite migration of the same name for why.
DROP INDEX idx_request_logs_key_hash ON `request_logs`;
DROP INDEX idx_request_logs_request_type ON `request_logs`;
DROP INDEX idx_request_logs_group_id ON `request_logs`;
DROP INDEX idx_request_logs_group_name ON `request_logs`;
DROP INDEX idx_request_logs_parent_group_id ON `request_logs`;
DROP INDEX idx_request_logs_parent_group_name ON `request_logs`;
DROP INDEX idx_request_logs_model ON `request_logs`;
CREATE INDEX idx_request_logs_key_hash_time ON `request_logs` (`key_hash`, `timestamp`);
CREATE INDEX idx_request_logs_type_time ON `request_logs` (`request_type`, `timestamp`);
CREATE INDEX idx_request_logs_success_time ON `request_logs` (`is_success`, `timestamp`);
CREATE INDEX idx_request_logs_status_time ON `request_logs` (`status_code`, `timestamp`);

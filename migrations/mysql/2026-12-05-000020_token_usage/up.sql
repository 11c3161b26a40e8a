-- Token usage (issue 20): what the upstream reported for the answered attempt (NULL = not
-- reported), the non-secret identity of the proxy key that authenticated the request, hourly
-- sums by group, model and proxy key, and running totals per upstream key.
ALTER TABLE `request_logs` ADD COLUMN `input_tokens` BIGINT;
ALTER TABLE `request_logs` ADD COLUMN `output_tokens` BIGINT;
ALTER TABLE `request_logs` ADD COLUMN `total_tokens` BIGINT;
ALTER TABLE `request_logs` ADD COLUMN `cached_tokens` BIGINT;
ALTER TABLE `request_logs` ADD COLUMN `cache_write_tokens` BIGINT;
ALTER TABLE `request_logs` ADD COLUMN `reasoning_tokens` BIGINT;
ALTER TABLE `request_logs` ADD COLUMN `proxy_key` VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE `api_keys` ADD COLUMN `input_tokens` BIGINT NOT NULL DEFAULT 0;
ALTER TABLE `api_keys` ADD COLUMN `output_tokens` BIGINT NOT NULL DEFAULT 0;
ALTER TABLE `api_keys` ADD COLUMN `total_tokens` BIGINT NOT NULL DEFAULT 0;
CREATE TABLE `usage_hourly_stats` (
    `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `time` DATETIME(6) NOT NULL,
    `group_id` BIGINT NOT NULL,
    `model` VARCHAR(255) NOT NULL DEFAULT '',
    `proxy_key` VARCHAR(64) NOT NULL DEFAULT '',
    `requests` BIGINT NOT NULL DEFAULT 0,
    `known_requests` BIGINT NOT NULL DEFAULT 0,
    `input_tokens` BIGINT NOT NULL DEFAULT 0,
    `output_tokens` BIGINT NOT NULL DEFAULT 0,
    `total_tokens` BIGINT NOT NULL DEFAULT 0,
    `cached_tokens` BIGINT NOT NULL DEFAULT 0,
    `cache_write_tokens` BIGINT NOT NULL DEFAULT 0,
    `reasoning_tokens` BIGINT NOT NULL DEFAULT 0,
    `created_at` DATETIME(6) NOT NULL,
    `updated_at` DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX idx_usage_hourly ON `usage_hourly_stats` (`time`, `group_id`, `model`, `proxy_key`);

-- At-rest encryption of upstream keys: which key derivation the stored values use (no row =
-- plain text), and the heartbeat rows that keep `migrate-keys` and a running server apart.
CREATE TABLE `key_encryption` (
    `id` INT NOT NULL PRIMARY KEY,
    `kdf_id` VARCHAR(255) NOT NULL,
    `verifier` VARCHAR(128) NOT NULL,
    `created_at` DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE `instance_locks` (
    `id` VARCHAR(64) NOT NULL PRIMARY KEY,
    `kind` VARCHAR(20) NOT NULL,
    `holder` VARCHAR(255) NOT NULL,
    `started_at` DATETIME(6) NOT NULL,
    `heartbeat_at` DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX idx_instance_locks_kind ON `instance_locks` (`kind`);

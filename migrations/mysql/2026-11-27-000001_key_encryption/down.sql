DROP TABLE `instance_locks`;
DROP TABLE `key_encryption`;

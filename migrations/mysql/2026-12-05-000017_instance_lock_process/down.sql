ALTER TABLE `instance_locks` DROP COLUMN `pid`, DROP COLUMN `host`;

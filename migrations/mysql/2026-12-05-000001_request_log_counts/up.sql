-- Exact totals for the logs page without counting millions of rows per view: the number of
-- request_logs rows per hour and per value of the equality filters (request type, success,
-- status code), kept by row triggers so every writer keeps it right. The logs page sums it and
-- counts only the partial hours at the edges of a time filter in request_logs itself. (MySQL's
-- TRUNCATE fires no trigger: after truncating request_logs, also empty request_log_counts.)
CREATE TABLE `request_log_counts` (
    `hour` DATETIME(6) NOT NULL,
    `request_type` VARCHAR(20) NOT NULL,
    `is_success` BOOLEAN NOT NULL,
    `status_code` INTEGER NOT NULL,
    `log_count` BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`hour`, `request_type`, `is_success`, `status_code`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Backfill before the triggers exist: MySQL commits each DDL statement on its own, and a row
-- both counted here and by a trigger would collide on the key.
INSERT INTO `request_log_counts` (`hour`, `request_type`, `is_success`, `status_code`, `log_count`)
SELECT DATE_FORMAT(`timestamp`, '%Y-%m-%d %H:00:00'), `request_type`, `is_success`, `status_code`, COUNT(*)
FROM `request_logs`
GROUP BY 1, 2, 3, 4;
CREATE TRIGGER `request_log_counts_insert` AFTER INSERT ON `request_logs` FOR EACH ROW
    INSERT INTO `request_log_counts` (`hour`, `request_type`, `is_success`, `status_code`, `log_count`)
    VALUES (DATE_FORMAT(NEW.`timestamp`, '%Y-%m-%d %H:00:00'), NEW.`request_type`, NEW.`is_success`, NEW.`status_code`, 1)
    ON DUPLICATE KEY UPDATE `log_count` = `log_count` + 1;
CREATE TRIGGER `request_log_counts_delete` AFTER DELETE ON `request_logs` FOR EACH ROW
    UPDATE `request_log_counts` SET `log_count` = `log_count` - 1
    WHERE `hour` = DATE_FORMAT(OLD.`timestamp`, '%Y-%m-%d %H:00:00')
      AND `request_type` = OLD.`request_type`
      AND `is_success` = OLD.`is_success`
      AND `status_code` = OLD.`status_code`;

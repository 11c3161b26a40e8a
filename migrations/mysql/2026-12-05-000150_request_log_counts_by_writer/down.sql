CREATE TRIGGER `request_log_counts_insert` AFTER INSERT ON `request_logs` FOR EACH ROW
    INSERT INTO `request_log_counts` (`hour`, `request_type`, `is_success`, `status_code`, `log_count`)
    VALUES (DATE_FORMAT(NEW.`timestamp`, '%Y-%m-%d %H:00:00'), NEW.`request_type`, NEW.`is_success`, NEW.`status_code`, 1)
    ON DUPLICATE KEY UPDATE `log_count` = `log_count` + 1;

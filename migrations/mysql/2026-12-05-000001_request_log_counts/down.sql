DROP TRIGGER `request_log_counts_delete`;
DROP TRIGGER `request_log_counts_insert`;
DROP TABLE `request_log_counts`;

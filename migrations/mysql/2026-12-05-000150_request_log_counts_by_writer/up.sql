-- The log writer adds its batch's counts to request_log_counts itself, one upsert per
-- (hour, type, success, status) per batch, instead of this per-row insert trigger. Deletes
-- (retention, an operator's own DELETE) still go through the delete trigger; rows inserted by
-- anything but gpt-load's writer are not counted.
DROP TRIGGER `request_log_counts_insert`;

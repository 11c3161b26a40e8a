-- The log writer adds its batch's counts to request_log_counts itself, one upsert per
-- (hour, type, success, status) per batch: the per-row insert trigger cost ~5 µs of every logged
-- request (bench/README.md). Deletes (retention, an operator's own DELETE) still go through the
-- delete trigger; rows inserted by anything but gpt-load's writer are not counted.
DROP TRIGGER "request_log_counts_insert";

-- SQLite and MySQL dropped their per-row insert trigger on request_logs in this migration (the
-- log writer counts its batches itself there). PostgreSQL keeps its statement-level trigger: it
-- already adds one grouped upsert per INSERT statement, which is what the writer does elsewhere.
SELECT 1;

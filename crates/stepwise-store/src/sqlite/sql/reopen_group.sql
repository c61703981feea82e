-- ?1 group name: a retried member is open again. A completed group stays completed,
-- so it never writes a second group.completed.
UPDATE run_group SET remaining = remaining + 1 WHERE name = ?1 AND completed_at IS NULL

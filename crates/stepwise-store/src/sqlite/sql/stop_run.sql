-- ?1 run id, ?2 reason ('cancelled' or 'timed_out'), ?3 error, ?4 give up
-- compensation. An operator's cancel overrides a failing run's reason; a deadline
-- keeps the first one. The deadline is spent either way.
UPDATE run
SET halt = CASE WHEN ?2 = 'cancelled' OR halt IS NULL THEN ?2 ELSE halt END,
    error = coalesce(error, ?3),
    no_compensate = no_compensate OR ?4,
    deadline_at = NULL
WHERE id = ?1

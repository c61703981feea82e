-- Whether any schedule is due: read first, so an idle process does not take the
-- write lock every second just to find nothing to fire.
SELECT EXISTS (
    SELECT 1 FROM schedule WHERE paused = 0 AND next_fire_at <= (SELECT now_ms FROM db_clock)
)

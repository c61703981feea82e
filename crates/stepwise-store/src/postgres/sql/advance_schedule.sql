-- $1 name, $2 next fire time, $3 last fire time (or NULL: unchanged), $4 last run.
UPDATE schedule
SET next_fire_at = $2, last_fire_at = coalesce($3, last_fire_at),
    last_run_id = coalesce($4, last_run_id)
WHERE name = $1

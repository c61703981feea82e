-- $1 schedule, $2 fire time: the run that fire time started, if any.
SELECT run_id FROM schedule_fire WHERE schedule = $1 AND fire_time = $2

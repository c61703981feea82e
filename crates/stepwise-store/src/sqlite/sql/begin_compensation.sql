-- ?1 run id, ?2 number of compensation steps just inserted: they are the run's open
-- steps now.
UPDATE run
SET steps_open = ?2, steps_total = steps_total + ?2
WHERE id = ?1

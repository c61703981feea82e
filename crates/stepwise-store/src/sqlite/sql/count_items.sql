-- ?1 run id, ?2 items: an expansion's items count among the run's open steps.
UPDATE run SET steps_total = steps_total + ?2, steps_open = steps_open + ?2 WHERE id = ?1

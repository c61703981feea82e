-- ?1 run id, ?2 items dropped by a retry.
UPDATE run SET steps_total = steps_total - ?2 WHERE id = ?1

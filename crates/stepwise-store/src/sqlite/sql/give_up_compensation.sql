-- ?1 run id: `cancel --no-compensate` of a compensating run.
UPDATE run SET no_compensate = 1 WHERE id = ?1

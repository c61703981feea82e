-- ?1 key, ?2 slots taken by the runs just admitted.
UPDATE concurrency_key SET active = active + ?2 WHERE key = ?1

-- ?1 key, ?2 slots freed by runs that just ended.
UPDATE concurrency_key SET active = active - ?2 WHERE key = ?1

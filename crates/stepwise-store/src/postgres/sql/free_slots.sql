-- $1 key, $2 slots freed: locks the key's row for the admission that follows.
UPDATE concurrency_key SET active = active - $2 WHERE key = $1

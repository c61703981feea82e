-- ?1 key, ?2 its new TAT (microseconds), ?3 starts just admitted.
UPDATE rate_limit
SET tat = ?2, admitted = admitted + ?3, last_admitted = (SELECT now_ms FROM db_clock)
WHERE key = ?1

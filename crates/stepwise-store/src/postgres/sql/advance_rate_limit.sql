-- $1 key (locked by rate_keys.sql), $2 its new TAT, $3 starts just admitted.
UPDATE rate_limit
SET tat = $2, admitted = admitted + $3, last_admitted = (SELECT stepwise_now())
WHERE key = $1

-- Moves steps whose backoff or delayed start has passed into the claim index.
UPDATE step SET status = 'pending'
WHERE status = 'scheduled' AND run_after <= (SELECT now_ms FROM db_clock)

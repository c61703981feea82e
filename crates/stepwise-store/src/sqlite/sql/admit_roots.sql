-- ?1 JSON array of admitted run ids (hex): their root steps become claimable, or
-- wait out a delayed start.
UPDATE step
SET status = CASE WHEN run_after > (SELECT now_ms FROM db_clock) THEN 'scheduled'
                  ELSE 'pending' END
WHERE run_id IN (SELECT unhex(value) FROM json_each(?1))
  AND status = 'blocked' AND deps_remaining = 0

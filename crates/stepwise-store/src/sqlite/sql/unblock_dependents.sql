-- One completed dependency of step ?1. The decrement that reaches 0 makes it
-- claimable; skipped steps (run failing) stay skipped.
UPDATE step
SET deps_remaining = deps_remaining - 1,
    status = CASE WHEN deps_remaining - 1 = 0 THEN 'pending' ELSE status END
WHERE id = ?1 AND status = 'blocked'

-- $1 dependent step ids, one entry per completed dependency (so a step named twice
-- lost two dependencies). Row locks serialize racing decrements; the one that
-- reaches 0 makes the step pending. Skipped steps (run failing) stay skipped.
-- The caller hands steps that became pending to the completing worker or gives
-- them their ready rows (`insert_ready_steps.sql`) in the same transaction.
UPDATE step s
SET deps_remaining = s.deps_remaining - d.n,
    status = CASE WHEN s.deps_remaining - d.n = 0 THEN 'pending' ELSE s.status END
FROM (SELECT id, count(*)::integer AS n FROM unnest($1::uuid[]) AS id GROUP BY id) d
WHERE s.id = d.id AND s.status = 'blocked'
RETURNING s.id, s.seq, s.queue, s.resource IS NOT NULL AS needs_lock,
          s.deps_remaining = 0 AS ready

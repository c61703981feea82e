-- ?1 run id: its claimable steps wait, blocked, for the run's admission.
UPDATE step SET status = 'blocked'
WHERE run_id = ?1 AND status = 'pending' AND deps_remaining = 0

-- $1 runs that just became terminal: those holding a slot give it back, once (the
-- flag is cleared in the same statement). Returns one key per freed slot.
UPDATE run
SET holds_slot = false
WHERE id = ANY ($1) AND holds_slot
RETURNING concurrency_key

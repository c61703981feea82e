-- ?1 JSON array of run ids (hex) that just became terminal: those holding a slot
-- give it back, once (the flag is cleared in the same statement). Returns one key
-- per freed slot.
UPDATE run
SET holds_slot = 0
WHERE id IN (SELECT unhex(value) FROM json_each(?1)) AND holds_slot
RETURNING concurrency_key

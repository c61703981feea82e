-- ?1 JSON array of expanded step ids (hex): a retry from these steps drops their
-- items (they expand afresh when they are claimable again). The caller takes the
-- number deleted off the run's steps.
DELETE FROM step WHERE item_of IN (SELECT unhex(j.value) FROM json_each(?1) j)

-- ?1 JSON array of claimed step seqs, ?2 the claiming worker: what each claim needs
-- from its run. A compensation also gets the output of the step it undoes and why
-- the run stopped. The worker's lease expiry rides along (one statement less).
SELECT s.seq, r.id, r.workflow, r.workflow_version, r.input,
       CASE WHEN s.item_of IS NULL THEN
           (SELECT json_group_object(d.name, json(coalesce(d.output, 'null')))
            FROM step d, json_each(d.dependents) x
            WHERE d.run_id = s.run_id AND x.value = lower(hex(s.id)))
       ELSE
           -- An item's context is its step's, built once at expansion.
           (SELECT json(p.item_context) FROM step p WHERE p.id = s.item_of)
       END AS dependency_outputs,
       -- A compensation of an item undoes that item: it gets the item's element.
       CASE WHEN s.compensates IS NULL THEN s.item_index
            ELSE (SELECT o.item_index FROM step o
                  WHERE o.run_id = s.run_id AND o.name = s.compensates) END AS item_index,
       CASE WHEN s.compensates IS NULL THEN s.item
            ELSE (SELECT o.item FROM step o
                  WHERE o.run_id = s.run_id AND o.name = s.compensates) END AS item,
       (SELECT o.output FROM step o
        WHERE o.run_id = s.run_id AND o.name = s.compensates) AS compensated_output,
       r.error,
       (SELECT w.expires_at FROM worker w WHERE w.id = ?2) AS lease_expires_at
FROM json_each(?1) j
JOIN step s ON s.seq = j.value
JOIN run r ON r.id = s.run_id
